export { decide, type DecideOptions } from './decide.js';
export { assignJobs, jobFitsPool, githubRunnerLabels, parseLabelExpression, evalLabelExpression, LabelExpressionError, type Assignment } from './match.js';
export { activeSchedule, lastMatch } from './schedule.js';
export { forecast, rateForecast, recurringForecast, combine, isWeekend, DEFAULT_FORECAST, type Forecast, type ForecastOptions } from './predict.js';
export type * from './types.js';
