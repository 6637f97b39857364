// Runs the examples as written against a relay started here, with the
// package installed from the npm pack tarball:
//
//   node test/support/check-examples.mjs SCRATCH_DIR
//
// SCRATCH_DIR has node_modules/@powerlobster/webhook installed from the
// tarball; the example files are copied there so they import that copy.
// Checks: examples/basic-nodejs/index.mjs prints "Connected! Webhook URL:"
// and the message; examples/clawdbot-integration answers through the SDK
// (agent.mjs) and behind `lobster-relay listen --forward` (bot.mjs).
import { spawn } from 'node:child_process';
import { copyFileSync } from 'node:fs';
import net from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { RELAY_BIN, TestRelay, within } from './relay.mjs';

const scratch = resolve(process.argv[2] ?? '.');
const examples = resolve(dirname(fileURLToPath(import.meta.url)), '../../../../examples');
const children = new Set();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

/** Starts a process and collects its output; `expect(text)` waits for a line. */
function run(command, args, env, cwd = scratch) {
  const child = spawn(command, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let output = '';
  const waiters = [];
  const onData = (chunk) => {
    output += chunk;
    for (const w of [...waiters]) if (output.includes(w.text)) w.resolve();
  };
  child.stdout.setEncoding('utf8').on('data', onData);
  child.stderr.setEncoding('utf8').on('data', onData);
  child.on('exit', () => children.delete(child));
  return {
    child,
    get output() {
      return output;
    },
    expect(text, ms = 15_000) {
      if (output.includes(text)) return Promise.resolve();
      const p = new Promise((resolve) => waiters.push({ text, resolve }));
      return within(ms, `${JSON.stringify(text)} from ${args.at(-1)}; output so far:\n${output}`, p);
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

function freePort() {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

for (const [dir, file] of [
  ['basic-nodejs', 'index.mjs'],
  ['clawdbot-integration', 'agent.mjs'],
  ['clawdbot-integration', 'bot.mjs'],
  ['clawdbot-integration', 'clawdbot.mjs'],
]) {
  copyFileSync(join(examples, dir, file), join(scratch, file));
}

const relay = await TestRelay.start();
try {
  const message = (text) => ({ event: 'message.received', data: { from: 'ada', text } });

  // basic-nodejs, as its README runs it.
  {
    const agent = await relay.createAgent('example-basic');
    const basic = run('node', ['index.mjs'], { LOBSTER_RELAY_URL: relay.url, POWERLOBSTER_API_KEY: agent.api_key });
    await basic.expect(`Connected! Webhook URL: ${agent.webhook_url}`);
    await relay.send(agent.webhook_url, message('hello from the check'));
    await basic.expect("New message: { from: 'ada', text: 'hello from the check' }");
    await basic.stop();
    console.log('ok - examples/basic-nodejs/index.mjs:\n' + basic.output.replace(/^/gm, '    '));
  }

  // clawdbot-integration through the SDK.
  {
    const agent = await relay.createAgent('example-clawdbot-sdk');
    const bot = run('node', ['agent.mjs'], {
      LOBSTER_RELAY_URL: relay.url,
      POWERLOBSTER_API_KEY: agent.api_key,
      WEBHOOK_SECRET: relay.secret,
    });
    await bot.expect('Clawdbot connected. Webhook URL:');
    await relay.send(agent.webhook_url, message('/ping'));
    await bot.expect('ada: /ping -> pong');
    await bot.stop();
    console.log('ok - examples/clawdbot-integration/agent.mjs:\n' + bot.output.replace(/^/gm, '    '));
  }

  // clawdbot-integration behind `lobster-relay listen --forward`.
  {
    const agent = await relay.createAgent('example-clawdbot-cli');
    const port = await freePort();
    const bot = run('node', ['bot.mjs'], { PORT: String(port), WEBHOOK_SECRET: relay.secret });
    await bot.expect('Clawdbot listening on');
    const listen = run(RELAY_BIN, ['listen', '--forward', `localhost:${port}/webhooks`], {
      LOBSTER_RELAY_URL: relay.url,
      LOBSTER_RELAY_API_KEY: agent.api_key,
    });
    await listen.expect('Ready!');
    await relay.send(agent.webhook_url, message('hi bot'));
    await bot.expect('ada: hi bot -> Hi ada, you said: hi bot');
    // A request whose signature does not verify is refused (and would be nacked).
    const forged = await fetch(`http://127.0.0.1:${port}/webhooks`, {
      method: 'POST',
      headers: { 'webhook-id': 'msg_x', 'webhook-timestamp': '1', 'webhook-signature': 'v1,AAAA' },
      body: JSON.stringify(message('forged')),
    });
    if (forged.status !== 401) throw new Error(`bot.mjs answered ${forged.status} to a forged request`);
    await listen.stop();
    await bot.stop();
    console.log('ok - examples/clawdbot-integration/bot.mjs behind listen --forward:\n' + bot.output.replace(/^/gm, '    '));
  }
} finally {
  for (const child of children) child.kill('SIGKILL');
  await relay.stop();
}
