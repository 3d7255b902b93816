/**
 * `pacer completion bash|zsh`: the scripts `pacer` prints are loaded into real shells and their
 * completion functions driven as the shell drives them (bash: COMP_WORDS, COMP_CWORD, COMPREPLY;
 * zsh: words, CURRENT and compadd). Class names come from a real API through `pacer` on PATH.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADMIN_TOKEN, request, startTestApi, type TestApi } from '../support/api-server.js';

const CLI = join(process.cwd(), 'dist/api/cli/pacer.js');

/** Whether a program is on PATH. */
function has(program: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${program}`]).status === 0;
}

describe('pacer completion', function () {
  this.timeout(60_000);
  let dir: string;
  let bashFile: string;
  let zshFile: string;
  /** PATH with a `pacer` that runs this build, as an installed pacer would be. */
  let path: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'pacer-completion-'));
    bashFile = join(dir, 'pacer.bash');
    zshFile = join(dir, '_pacer');
    writeFileSync(bashFile, execFileSync(process.execPath, [CLI, 'completion', 'bash']));
    writeFileSync(zshFile, execFileSync(process.execPath, [CLI, 'completion', 'zsh']));
    writeFileSync(join(dir, 'pacer'), `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n`);
    chmodSync(join(dir, 'pacer'), 0o755);
    path = `${dir}:${process.env.PATH}`;
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /**
   * What bash offers for a command line whose last word is being completed (`pacer class ` ends
   * in ''). Asynchronous: the test API in this process must answer the script's `pacer`.
   */
  async function bashComplete(line: string, env: Record<string, string> = {}): Promise<string[]> {
    const words = line.split(' ');
    const script = `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _pacer; printf '%s\\n' "\${COMPREPLY[@]}"`;
    const { stdout, stderr } = await promisify(execFile)('bash', ['--norc', '--noprofile', '-c', script, 'bash', bashFile, ...words], { env: { PATH: path, ...env }, encoding: 'utf8' });
    assert.equal(stderr, '', `bash said: ${stderr}`);
    return stdout.split('\n').filter(Boolean).sort();
  }

  it('bash: subcommands, their subcommands, aliases and help', async () => {
    assert.deepEqual(await bashComplete('pacer cl'), ['class']);
    assert.deepEqual(await bashComplete('pacer c'), ['class', 'completion']);
    const classSubs = await bashComplete('pacer class ');
    for (const sub of ['ls', 'get', 'set', 'rm', 'watch']) assert.ok(classSubs.includes(sub), `pacer class <TAB> offers ${sub}: ${classSubs}`);
    assert.deepEqual(await bashComplete('pacer token li'), ['list']);
    assert.deepEqual(await bashComplete('pacer completion '), ['bash', 'help', 'zsh'], 'class-names is hidden');
    assert.ok((await bashComplete('pacer class help s')).includes('set'));
  });

  it('bash: the flags of the command typed so far, past flags and their values', async () => {
    assert.deepEqual(await bashComplete('pacer class set web --ra'), ['--rate']);
    assert.deepEqual(await bashComplete('pacer class set web --rate 10mbit --ce'), ['--ceil']);
    assert.deepEqual(await bashComplete('pacer token list --js'), ['--json'], 'through an alias');
    assert.deepEqual(await bashComplete('pacer token create --name ci --t'), ['--token-file', '--ttl']);
    assert.deepEqual(await bashComplete('pacer --ver'), ['--version']);
    // --api's value "class" is a value, not the class command.
    assert.deepEqual(await bashComplete('pacer audit --api class --li'), ['--limit']);
  });

  it('bash: a flag\'s fixed values; any other value is left to bash (file names)', async () => {
    assert.deepEqual(await bashComplete('pacer token create --role '), ['admin', 'agent', 'editor', 'viewer']);
    assert.deepEqual(await bashComplete('pacer token create --role ed'), ['editor']);
    assert.deepEqual(await bashComplete('pacer audit --kind '), ['class', 'token']);
    assert.deepEqual(await bashComplete('pacer token create --ttl '), []);
    assert.deepEqual(await bashComplete('pacer class set web '), [], 'nothing after the class name but flags');
  });

  describe('bash: class names from the API', () => {
    let t: TestApi;
    before(async () => {
      t = await startTestApi();
      for (const name of ['web', 'webhooks', 'db']) assert.equal((await request(t.url, 'POST', '/v1/classes', { body: { name, rate: '10mbit' } })).status, 201);
    });
    after(() => t.close());

    it('with PACER_TOKEN set, class get|set|rm <TAB> offers the API\'s classes', async () => {
      const env = { PACER_TOKEN: ADMIN_TOKEN, PACER_API: t.url };
      assert.deepEqual(await bashComplete('pacer class get ', env), ['db', 'web', 'webhooks']);
      assert.deepEqual(await bashComplete('pacer class rm we', env), ['web', 'webhooks']);
      assert.deepEqual(await bashComplete(`pacer class set --api ${t.url} d`, { PACER_TOKEN: ADMIN_TOKEN }), ['db'], '--api on the line is used');
    });

    it('without a token, or with one the API refuses, offers none and prints nothing', async () => {
      assert.deepEqual(await bashComplete('pacer class get ', { PACER_API: t.url }), []);
      assert.deepEqual(await bashComplete('pacer class get ', { PACER_API: t.url, PACER_TOKEN: 'pacer_wrong-token-000000000000000000' }), []);
    });
  });

  describe('zsh', () => {
    before(function () {
      if (!has('zsh')) {
        console.log('    zsh is absent on this machine (apt-get install zsh): the zsh script is not checked');
        this.skip();
      }
    });

    it('zsh -n parses the script', () => {
      const r = spawnSync('zsh', ['-n', zshFile], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
    });

    /** What the zsh function hands to compadd (compadd itself filters by the prefix, so all are listed); @files: _files. */
    function zshComplete(line: string): string[] {
      const words = line.split(' ');
      const script = [
        'reply=()',
        'compadd() { [[ $1 == -- ]] && shift; reply+=("$@"); }',
        '_files() { reply+=(@files); }',
        'compdef() { :; }',
        'source "$1"; shift',
        'words=("$@"); CURRENT=$#',
        '_pacer',
        "print -rl -- $reply",
      ].join('\n');
      const r = spawnSync('zsh', ['-f', '-c', script, 'zsh', zshFile, ...words], { env: { PATH: path }, encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stderr, '', `zsh said: ${r.stderr}`);
      return r.stdout.split('\n').filter(Boolean).sort();
    }

    it('offers subcommands, flags and fixed values as bash does', () => {
      assert.ok(zshComplete('pacer cl').includes('class'));
      assert.ok(zshComplete('pacer class ').includes('set'));
      assert.ok(zshComplete('pacer class set web --ra').includes('--rate'));
      assert.ok(!zshComplete('pacer class set web --ra').includes('set'));
      assert.deepEqual(zshComplete('pacer token create --role '), ['admin', 'agent', 'editor', 'viewer']);
      assert.deepEqual(zshComplete('pacer token create --ttl '), ['@files']);
    });
  });
});
