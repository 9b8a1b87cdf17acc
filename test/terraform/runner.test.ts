/**
 * Terraform's failures as Parmanu reports them, from the real terraform binary: the CLI
 * configuration's noise (a missing ~/.terraformrc, a plugin cache directory that cannot be opened,
 * provider development overrides) is gone, and each real error is whole, in one line.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MAX_ERROR_LINES, Terraform, TerraformError, terraformProblem } from '../../src/terraform/runner.js';

const root = mkdtempSync(join(tmpdir(), 'parmanu-tf-runner-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A working directory holding `main.tf`. */
function workdir(name: string, mainTf: string): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'main.tf'), mainTf);
  return dir;
}

async function failure(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TerraformError);
  const message = (err as TerraformError).message;
  // One line, no terminal colors, no diagnostic boxes.
  expect(message).not.toMatch(/[\n│╷╵]/);
  expect(message).not.toContain('\u001b');
  return message;
}

const TWO_ERRORS = 'resource "terraform_data" "a" {\n  input = var.nope\n}\nresource "terraform_data" "b" {\n  inputs = 1\n}\n';
const UNDECLARED = 'Reference to undeclared input variable (main.tf line 2): An input variable with the name "nope" has not been declared. This variable can be declared with a variable "nope" {} block.';
const UNSUPPORTED = 'Unsupported argument (main.tf line 5): An argument named "inputs" is not expected here. Did you mean "input"?';

describe('TerraformError messages', () => {
  it('drop the warning about a missing CLI configuration file and keep every error whole', async () => {
    const tf = new Terraform({ env: { TF_CLI_CONFIG_FILE: join(root, 'no-such.tfrc') } });
    const message = await failure(tf.plan(workdir('two-errors', TWO_ERRORS), 'p.tfplan'));
    expect(message).toBe(`terraform plan failed with 2 errors: ${UNDECLARED} | ${UNSUPPORTED}`);
  });

  it('drop the CLI configuration\'s own errors (a plugin cache that cannot be opened) and the development-overrides warning', async () => {
    const rc = join(root, 'noisy.tfrc');
    writeFileSync(rc, `plugin_cache_dir = "${join(root, 'no-cache')}"\nprovider_installation {\n  dev_overrides {\n    "hashicorp/null" = "${join(root, 'nowhere')}"\n  }\n  direct {}\n}\n`);
    const tf = new Terraform({ env: { TF_CLI_CONFIG_FILE: rc } });
    const dir = workdir('noisy', TWO_ERRORS);
    const message = await failure(tf.plan(dir, 'p.tfplan'));
    expect(message).toBe(`terraform plan failed with 2 errors: ${UNDECLARED} | ${UNSUPPORTED}`);
    // init fails on the backend: its three errors, none of the noise.
    const init = await failure(tf.init(workdir('s3-backend', 'terraform {\n  backend "s3" {}\n}\n'), 'h'));
    expect(init).toMatch(/^terraform init failed with 3 errors: Missing Required Value \(main\.tf line 2\): The attribute "bucket" is required by the backend\. Refer to the backend documentation for additional information which attributes are required\. \| /);
    expect(init).not.toMatch(/plugin cache|CLI configuration|development overrides|may not behave as intended/i);
  });

  it('read the colored, boxed errors of commands without -no-color (state pull) to their last sentence', async () => {
    const tf = new Terraform({ env: { TF_CLI_CONFIG_FILE: join(root, 'no-such.tfrc') } });
    const message = await failure(tf.pullState(workdir('uninitialized', 'terraform {\n  backend "s3" {}\n}\n')));
    expect(message).toMatch(/^terraform state pull failed: Backend initialization required, please run "terraform init": Reason: Initial configuration of the requested backend "s3" /);
    expect(message).toMatch(/At this point, no changes to your existing configuration or state have been made\.$/);
  });

  it('keep the values terraform shows under the source and a wrapped message joined', async () => {
    const tf = new Terraform();
    const dir = workdir('precondition', 'variable "x" {\n  default = "hello"\n}\nresource "terraform_data" "a" {\n  input = var.x\n  lifecycle {\n    precondition {\n      condition     = var.x == "world"\n      error_message = "The value must be world, and this sentence is deliberately long so that terraform wraps it over two lines."\n    }\n  }\n}\n');
    await tf.init(dir, 'h');
    expect(await failure(tf.plan(dir, 'p.tfplan'))).toBe('terraform plan failed: Resource precondition failed (main.tf line 8, where var.x is "hello"): The value must be world, and this sentence is deliberately long so that terraform wraps it over two lines.');
  });

  it('read a summary terraform wraps over two lines as one sentence, not as a summary and its detail', async () => {
    // A data directory that is a file: init's summary is wrapped ("…including problems\nwith the
    // configuration, described below."), and its second line is no resource address either.
    const tf = new Terraform({ env: { TF_CLI_CONFIG_FILE: join(root, 'no-such.tfrc'), TF_DATA_DIR: '/etc/passwd' } });
    const message = await failure(tf.init(workdir('data-dir-is-a-file', 'resource "terraform_data" "a" {}\n'), 'h'));
    expect(message).toMatch(/^terraform init failed with 2 errors: Terraform encountered problems during initialisation, including problems with the configuration, described below\. The Terraform configuration must be valid before initialization so that Terraform can determine which modules and providers need to be installed\. \| failed to read module manifest: /);
    expect(message).not.toMatch(/including problems:|\(the configuration, described below\.|below\.:/);
  });

  it('keep a short summary when no blank line follows it (a plugin crash and its goroutines)', () => {
    const crash = `Error: The plugin crashed\n${Array.from({ length: 60 }, (_, i) => `goroutine ${i + 1} [running]:`).join('\n')}\n`;
    expect(terraformProblem(crash)).toBe(': The plugin crashed … (60 more lines)');
    // A long unbroken summary continues over at most 3 more lines; the rest is its detail.
    const long = `Error: ${'x'.repeat(70)}\n${Array.from({ length: 10 }, () => 'y'.repeat(70)).join('\n')}\n`;
    expect(terraformProblem(long)).toMatch(new RegExp(`^: ${'x'.repeat(70)}( ${'y'.repeat(70)}){3}: ${'y'.repeat(70)} `));
  });

  it('take "with ADDRESS," as the resource only on the line right after the summary, not in the detail', async () => {
    const tf = new Terraform({ env: { TF_CLI_CONFIG_FILE: join(root, 'no-such.tfrc') } });
    const dir = workdir('with-in-detail', 'variable "x" {\n  default = 1\n}\nresource "terraform_data" "b" {\n  input = var.x\n  provisioner "local-exec" {\n    command = "exit 3"\n  }\n}\nresource "terraform_data" "a" {\n  input = var.x\n  lifecycle {\n    postcondition {\n      condition     = self.output == 2\n      error_message = "Deliberately failing.\\nwith a line that reads like an address,\\nand the end."\n    }\n  }\n}\n');
    await tf.init(dir, 'h');
    expect(await tf.plan(dir, 'p.tfplan')).toBe(true);
    const message = await failure(tf.apply(dir, 'p.tfplan'));
    // The two resources are created at once: their errors come in either order.
    expect(message).toMatch(/^terraform apply failed with 2 errors: /);
    expect(message).toContain("local-exec provisioner error (terraform_data.b, main.tf line 6): Error running command 'exit 3': exit status 3.");
    expect(message).toContain('Resource postcondition failed (main.tf line 14, where self.output is 1): Deliberately failing. with a line that reads like an address, and the end.');
  });

  it(`cut past ${MAX_ERROR_LINES} lines between whole paragraphs, saying how many lines are left out`, async () => {
    const tf = new Terraform();
    const many = Array.from({ length: 30 }, (_, i) => `resource "terraform_data" "r${i}" {\n  inputs = ${i}\n}\n`).join('');
    const message = await failure(tf.plan(workdir('many', many), 'p.tfplan'));
    const m = /^terraform plan failed with 30 errors: (.*) … \((\d+) more lines\)$/.exec(message);
    expect(m, message).not.toBeNull();
    const kept = (m?.[1] ?? '').split(' | ');
    // Each error is a head line and a one-line detail: 20 whole errors fit in 40 lines, 10 × 2 lines are left out.
    expect(kept).toHaveLength(20);
    expect(Number(m?.[2])).toBe(20);
    for (const [i, k] of kept.entries()) expect(k).toBe(`Unsupported argument (main.tf line ${3 * i + 2}): An argument named "inputs" is not expected here. Did you mean "input"?`);
  });
});
