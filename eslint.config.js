// @ts-check
// Lint, and the design's dependency rule between folders (../shared/DESIGN.md, "Layout and dependency rule").
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const CDKTF = ['cdktf', 'cdktf/*', 'constructs', '@cdktf/*'];
const PROVIDER_ROOTS = {
  paths: [
    { name: '@cdktf/provider-aws', message: 'Import provider bindings by deep path (@cdktf/provider-aws/lib/instance): the root costs seconds of start-up.' },
    { name: '@cdktf/provider-google', message: 'Import provider bindings by deep path (@cdktf/provider-google/lib/compute-instance): the root costs seconds of start-up.' },
  ],
};
const IO_LIBS = ['ioredis', 'execa', '@octokit/*', '@gitbeaker/*', 'undici', 'node:*', 'fs', 'fs/*', 'child_process', 'http', 'https', 'net', 'os', 'path', 'crypto'];

/** The shipped CLI (src/, stacks/) imports no development code: bench/ and test/ are not packed. */
const NO_DEV_CODE = { group: ['**/bench/**', '**/test/**'], message: 'The shipped CLI (src/, stacks/) must not import bench/ or test/: they are development tools, not part of the package.' };
/** The same for import(): no dynamic import of bench/ or test/, and none whose path is computed (test/proof/shipped.test.ts checks the compiled JS too). */
const NO_DEV_DYNAMIC_IMPORT = [
  { selector: 'ImportExpression[source.value=/(^|\\/)(bench|test)\\//]', message: NO_DEV_CODE.message },
  { selector: "ImportExpression:not([source.type='Literal'])", message: 'The shipped CLI imports modules by literal path only, so that no import() can lead into bench/ or test/.' },
];

/** A restricted-imports rule for a folder of the shipped CLI: forbidden module patterns, with the folder's reason. */
const restrict = (why, groups, typeOnlyOk = []) => ({
  '@typescript-eslint/no-restricted-imports': [
    'error',
    {
      ...PROVIDER_ROOTS,
      patterns: [
        { group: groups, message: why },
        // An entry is a pattern, or a group of patterns (with `!` exceptions) allowed as types only.
        ...typeOnlyOk.map((g) => ({ group: Array.isArray(g) ? g : [g], allowTypeImports: true, message: `${why} (type imports are allowed)` })),
        NO_DEV_CODE,
      ],
    },
  ],
});

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', '.parmanu/**', 'cdktf.out/**', 'bin/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { parserOptions: { ecmaVersion: 2023, sourceType: 'module' } },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-imports': 'off',
      '@typescript-eslint/no-restricted-imports': ['error', { ...PROVIDER_ROOTS, patterns: [{ group: CDKTF, message: 'Only stacks/ imports CDKTF.' }] }],
    },
  },
  {
    // Every folder of src/; the folders below that have rules of their own repeat NO_DEV_CODE through restrict().
    files: ['src/**'],
    rules: { ...restrict('Only stacks/ imports CDKTF.', CDKTF), 'no-restricted-syntax': ['error', ...NO_DEV_DYNAMIC_IMPORT] },
  },
  {
    files: ['src/decide/**'],
    rules: {
      ...restrict(
        'decide/ is pure: no I/O, no clock, no randomness; it imports types only.',
        [...CDKTF, ...IO_LIBS, '**/emitters/**', '**/history/**', '**/terraform/**', '**/reconcile/**', '**/cli/**', '**/sim/**', '**/stacks/**'],
        ['**/policy/*'],
      ),
      'no-restricted-properties': [
        'error',
        { object: 'Date', property: 'now', message: 'decide/ takes `now` as an argument.' },
        { object: 'Math', property: 'random', message: 'decide/ takes ids and randomness as arguments.' },
        { object: 'performance', property: 'now', message: 'decide/ takes `now` as an argument.' },
        { object: 'process', message: 'decide/ reads no environment.' },
      ],
      'no-restricted-syntax': ['error', { selector: "NewExpression[callee.name='Date'][arguments.length=0]", message: 'decide/ takes `now` as an argument.' }, ...NO_DEV_DYNAMIC_IMPORT],
    },
  },
  {
    files: ['src/policy/**'],
    rules: restrict('policy/ reads policy files only.', [...CDKTF, 'ioredis', 'execa', '@octokit/*', '@gitbeaker/*', '**/emitters/**', '**/decide/**', '**/history/**', '**/terraform/**', '**/reconcile/**', '**/cli/**', '**/sim/**', '**/stacks/**']),
  },
  {
    files: ['src/emitters/**'],
    // Emitters produce the Job values decide consumes: they may import its types, nothing else.
    rules: restrict('emitters/ talk to CI platforms only.', [...CDKTF, 'ioredis', 'execa', '**/decide/decide*', '**/decide/match*', '**/decide/predict*', '**/decide/schedule*', '**/decide/index*', '**/history/**', '**/terraform/**', '**/reconcile/**', '**/cli/**', '**/sim/**', '**/stacks/**'], ['**/decide/types*']),
  },
  {
    files: ['src/history/**'],
    rules: restrict('history/ stores; it talks to no CI platform or cloud.', [...CDKTF, 'execa', '@octokit/*', '@gitbeaker/*', '**/emitters/**', '**/decide/**', '**/terraform/**', '**/reconcile/**', '**/cli/**', '**/sim/**', '**/stacks/**']),
  },
  {
    files: ['src/terraform/**'],
    // From policy/ only the node resource names it shares with stacks/ (resources.ts), and types.
    rules: restrict('terraform/ runs terraform only.', [...CDKTF, 'ioredis', '@octokit/*', '@gitbeaker/*', '**/emitters/**', '**/decide/**', '**/history/**', '**/reconcile/**', '**/cli/**', '**/sim/**', '**/stacks/**'], [['**/policy/*', '!**/policy/resources.js']]),
  },
  {
    files: ['src/sim/**'],
    rules: restrict('sim/ drives decide/ and nothing that does real I/O.', [...CDKTF, 'ioredis', 'execa', '@octokit/*', '@gitbeaker/*', '**/emitters/**', '**/history/**', '**/terraform/**', '**/reconcile/**', '**/cli/**', '**/stacks/**']),
  },
  {
    files: ['stacks/**'],
    rules: {
      'no-restricted-syntax': ['error', ...NO_DEV_DYNAMIC_IMPORT],
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          ...PROVIDER_ROOTS,
          patterns: [
            { group: ['ioredis', 'execa', '@octokit/*', '@gitbeaker/*', '**/src/emitters/**', '**/src/decide/**', '**/src/history/**', '**/src/terraform/**', '**/src/reconcile/**', '**/src/cli/**', '**/src/sim/**'], message: 'stacks/ renders Terraform from plain data.' },
            // …and src/policy/resources.ts: the names of node resources, shared with the plan guard.
            { group: ['**/src/policy/*', '!**/src/policy/resources.js'], allowTypeImports: true, message: 'stacks/ may import policy types only.' },
            NO_DEV_CODE,
          ],
        },
      ],
    },
  },
  {
    // The cdktf app entry is a composition root: it loads the policy like the CLI does.
    files: ['stacks/main.ts'],
    rules: { '@typescript-eslint/no-restricted-imports': ['error', { ...PROVIDER_ROOTS, patterns: [NO_DEV_CODE] }] },
  },
  {
    // Tests may use cdktf's own Testing helpers; bench/ measures cdktf through stacks/floor.ts.
    // (bench/ and test/ may import each other and src/: they are development code, never packed.)
    files: ['test/**'],
    rules: { '@typescript-eslint/no-restricted-imports': ['error', PROVIDER_ROOTS] },
  },
);
