/**
 * Text safety shared by every layer (the policy module is the one all others may import): what a
 * policy string may contain where it ends up in a shell script, a URL or a runner registration,
 * and the one helper that strips control characters from anything printed to a terminal.
 *
 * The patterns below match control characters on purpose (eslint's no-control-regex is off here).
 */
/* eslint-disable no-control-regex */

/** C0 controls (tab and newline included), DEL and C1 controls. */
export const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;
/** Shell metacharacters that never belong in a label, name, version or URL of a policy. */
export const SHELL_METACHARS = /[$`'";|&<>()\\]/;

// ESC sequences first (CSI `ESC [ … final`, OSC `ESC ] … BEL|ST`, DCS/SOS/PM/APC `ESC P|X|^|_ … ST`,
// any other `ESC x`), then C1 CSI/OSC introducers, then every remaining C0 (but \n and \t), DEL, C1.
const ESCAPES = /\u001b\[[0-?]*[ -/]*[@-~]?|\u001b[\]PX^_][\s\S]*?(?:\u0007|\u001b\\|$)|\u001b[\s\S]?|\u009b[0-?]*[ -/]*[@-~]?|\u009d[\s\S]*?(?:\u0007|\u009c|$)/g;
const OTHER_CONTROLS = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;
/** A control character other than newline, tab and carriage return (a Windows hook script may hold CRLF). */
export const CONTROL_BUT_CRLF_TAB = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/;
/** A control character other than newline and tab (which block scalars and messages may hold). */
export const CONTROL_BUT_NEWLINE_TAB = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;

/**
 * A string from a CI platform or a policy made safe for a terminal: ESC sequences removed whole,
 * every other control character (C0 except newline and tab, DEL, C1) dropped.
 */
export function forTerminal(s: string): string {
  return s.replace(ESCAPES, '').replace(OTHER_CONTROLS, '');
}

/** `U+001B` for a character: how a message names a character it will not print. */
export function codePoint(ch: string): string {
  return `U+${(ch.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}`;
}

/** Names the first character of `s` matching `re` for a message (control characters by code point). */
export function showChar(ch: string): string {
  return CONTROL_CHARS.test(ch) || /\s/.test(ch) ? codePoint(ch) : `"${ch}"`;
}

// ---------------------------------------------------------------- URLs

/**
 * An http(s) base URL: scheme, host (name, IPv4 or [IPv6]), optional port and path; no user
 * info, query or fragment, and none of the characters a shell or a heredoc would act on.
 */
export const HTTP_URL = /^https?:\/\/(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?(?:\/[A-Za-z0-9._~%+=:,@/-]*)?$/;

/** Why `v` is not an acceptable URL (the most specific reason first). */
export function urlProblem(v: unknown): string {
  const example = 'must be an http(s) URL such as https://gitlab.example.com';
  if (typeof v !== 'string') return example;
  const control = CONTROL_CHARS.exec(v);
  if (control) return `must not contain control characters (${codePoint(control[0])})`;
  if (/\s/.test(v)) return 'must not contain whitespace';
  const meta = /[$`'"\\;|&<>(){}!*^]/.exec(v);
  if (meta) return `must not contain ${showChar(meta[0])}: quotes, $, backticks and other shell metacharacters are refused in a URL`;
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)/.exec(v);
  if (!m || !/^https?$/i.test(m[1] ?? '')) return example;
  if ((m[2] ?? '').includes('@')) return 'must not carry a user name or password (user@host): credentials belong in the token fields';
  if (/[?#]/.test(v)) return 'must be a base URL without a query (?) or fragment (#)';
  return example;
}

// ---------------------------------------------------------------- versions

/**
 * `latest`, or a full release version x.y.z: 17.5.0, v2.321.0, 17.5.0-rc1. Never 17.5: the release
 * is resolved (and its download named) by its x.y.z version (emitters/release.ts).
 */
export const RUNNER_VERSION = /^(?:latest|v?\d{1,6}\.\d{1,6}\.\d{1,6}(?:-[0-9A-Za-z]+(?:\.[0-9A-Za-z]+)*)?)$/;

// ---------------------------------------------------------------- labels

/** Longest label any platform takes: GitLab tag names are at most 255 characters. */
export const LABEL_MAX = 255;
/** Characters no label of any platform may hold here: whitespace, commas, control and shell metacharacters. */
export const LABEL = /^[^\s,\u0000-\u001f\u007f-\u009f$`'";|&<>()\\]+$/;

/** Why `v` is not a label any platform takes. */
export function labelProblem(v: unknown): string {
  if (typeof v !== 'string') return 'a label is a string';
  const control = CONTROL_CHARS.exec(v);
  if (control) return `a label has no control characters (${codePoint(control[0])})`;
  if (/\s/.test(v)) return 'a label has no spaces or other whitespace (runners separate labels with them)';
  if (v.includes(',')) return 'a label has no commas (runners split their label lists on commas)';
  const meta = SHELL_METACHARS.exec(v);
  if (meta) return `a label has no ${showChar(meta[0])}: shell metacharacters ($ \` ' " ; | & < > ( ) \\) are refused`;
  return 'invalid label';
}

/** Per platform, beyond LABEL: the characters its labels refuse and how many it takes. */
export const PLATFORM_LABELS = {
  /** GitLab: tag names up to 255 characters; a runner or job with more than 50 tags is refused (TooManyTagsError). */
  gitlab: { maxCount: 50, maxLength: 255, refused: undefined },
  /** GitHub: config.sh splits `--labels` on commas; runner names are at most 64 characters. */
  github: { maxCount: undefined, maxLength: 255, refused: undefined },
  /**
   * Jenkins: a label atom is a name Jenkins#checkGoodName accepts (none of ? * / \ % ! @ # $ ^ & | < > [ ] : ;, no
   * control characters), and no label-expression operator or quote: `( ) ! & | " '`.
   */
  jenkins: { maxCount: undefined, maxLength: 255, refused: /[?*/\\%!@#$^&|<>[\]:;()"']/ },
  replay: { maxCount: undefined, maxLength: LABEL_MAX, refused: undefined },
} as const;

// ---------------------------------------------------------------- names on the platforms

/** A GitHub user or organization: letters, digits and single inner hyphens, at most 39 characters. */
export const GITHUB_OWNER = /^(?=.{1,39}$)[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*$/;
/** A GitHub repository name: letters, digits, `.`, `_`, `-`, at most 100 characters (not `.` or `..`). */
export const GITHUB_REPO = /^(?!\.{1,2}$)[A-Za-z0-9._-]{1,100}$/;
/**
 * A GitLab project or group: a numeric id, or a full path of segments of letters, digits, `_`,
 * `-`, `.` (a segment does not start with `-`), separated by `/`.
 */
export const GITLAB_PATH = /^(?=.{1,255}$)(?:\d+|[A-Za-z0-9_.][A-Za-z0-9_.-]*(?:\/[A-Za-z0-9_.][A-Za-z0-9_.-]*)*)$/;

// ---------------------------------------------------------------- runner settings passed through

/** A GitHub runner environment variable's name (`runner.config` of a github pool). */
export const ENV_NAME = /^[A-Z_][A-Z0-9_]*$/;
/** Names the runner sets from Parmanu's own inputs (the JIT config, the registration token): never from the policy. */
export const RESERVED_ENV = /^ACTIONS_RUNNER_INPUT_/;
/**
 * A JVM option of a Jenkins agent (`runner.config` of a jenkins pool): starts with `-`, no
 * whitespace, no quotes, no shell or PowerShell metacharacters, no `%` (Task Scheduler expands it).
 */
export const JVM_OPTION = /^-[A-Za-z0-9._:=+,/@-]+$/;
/** JVM options that would change what is run: Parmanu starts `-jar agent.jar` itself. */
export const JVM_REFUSED = /^(?:-jar|-cp|-classpath|--class-path|-version|--version|-help|--help|-h|-\?)$/;

/**
 * Why a GitLab `runner.config` TOML fragment cannot go below the runner's `[[runners]]` header
 * (gitlab-runner's `--template-config` takes one `[[runners]]` table and its sub-tables), or
 * undefined. Only table headers are looked at: the fragment is trusted policy content.
 */
export function tomlFragmentProblem(s: string): string | undefined {
  const lines = s.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = /^\s*(\[\[?)\s*([^\]]*?)\s*\]\]?\s*(?:#.*)?$/.exec(lines[i] ?? '');
    if (!m || /,/.test(m[2] ?? '')) continue;
    const name = (m[2] ?? '').replace(/["']/g, '');
    if (name === 'runners') return `line ${i + 1}: has a [[runners]] header of its own; Parmanu writes the runner's [[runners]] header, the fragment holds only what goes below it (keys, [runners.docker], [runners.cache], …)`;
    if (!name.startsWith('runners.')) return `line ${i + 1}: table [${name}] is outside the runner's section; only keys of [[runners]] and its sub-tables ([runners.docker], [runners.cache], …) may be given`;
  }
  return undefined;
}

/** GCP label keys: a lowercase letter first, then lowercase letters, digits, `-` and `_`, at most 63 characters. */
export const GCP_LABEL_KEY = /^[a-z][a-z0-9_-]{0,62}$/;
/** GCP label values: lowercase letters, digits, `-` and `_`, at most 63 characters (may be empty). */
export const GCP_LABEL_VALUE = /^[a-z0-9_-]{0,63}$/;
/** AWS tags valid on every resource Parmanu creates (IAM included): letters, digits, spaces and `_ . : / = + - @`. */
export const AWS_TAG_KEY = /^[\p{L}\p{N} _.:/=+@-]{1,128}$/u;
export const AWS_TAG_VALUE = /^[\p{L}\p{N} _.:/=+@-]{0,256}$/u;
/** Tag and label keys that are Parmanu's own (`parmanu:*` on AWS, `parmanu-*` on GCP): never set from the policy. */
export const PARMANU_TAG = /^parmanu[:-]/i;
