/**
 * Which HTTP proxy (if any) carries the connection to the relay, from the
 * `proxy` option or the environment, and the agent that tunnels through it
 * (HTTP CONNECT, by `https-proxy-agent`).
 *
 * The environment is read as curl and the CLI read it (docs/sdk.md#proxies):
 * `wss://` uses `HTTPS_PROXY`, `ws://` uses `HTTP_PROXY`, `ALL_PROXY` is the
 * fallback for both, lowercase names win over uppercase, and `NO_PROXY`
 * lists hosts reached directly. `proxy-from-env` reads the same variables
 * but matches a bare `NO_PROXY` name only as that exact host (curl, Python's
 * urllib and the CLI also match its subdomains) and looks for `WSS_PROXY`,
 * so the few lines are here instead.
 */
import net from 'node:net';

import { HttpsProxyAgent } from 'https-proxy-agent';

import { ConfigurationError } from './errors.js';

/** The proxy a client uses. */
export interface ProxyChoice {
  /** The proxy URL, credentials included: only for the agent. */
  readonly url: URL;
  /** `scheme://host:port`, no credentials: for messages. */
  readonly display: string;
  /** Where it came from: `the proxy option`, `HTTPS_PROXY`, ... */
  readonly source: string;
  /** True when the URL carries a user name or password. */
  readonly hasCredentials: boolean;
}

type Env = Record<string, string | undefined>;

/**
 * The proxy for connections to `target` (a `ws:`/`wss:` URL): `option` when
 * it is a string, none when it is `false`/`null`, else the environment's.
 */
export function chooseProxy(target: string, option: unknown, env: Env = process.env): ProxyChoice | null {
  if (option === false || option === null) return null;
  if (option !== undefined) {
    if (typeof option !== 'string' || option.trim() === '') {
      throw new ConfigurationError(
        'proxy must be a URL string (e.g. http://proxy.example.com:3128), false for none, or left out to use HTTPS_PROXY / HTTP_PROXY',
        'invalid_proxy',
      );
    }
    return parseProxy(option.trim(), 'the proxy option');
  }
  const url = new URL(target);
  const secure = url.protocol === 'wss:';
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = Number(url.port) || (secure ? 443 : 80);
  const noProxy = readEnv(env, 'NO_PROXY');
  if (noProxy && bypassesProxy(host, port, noProxy.value)) return null;
  const found = readEnv(env, secure ? 'HTTPS_PROXY' : 'HTTP_PROXY') ?? readEnv(env, 'ALL_PROXY');
  return found ? parseProxy(found.value.trim(), found.name) : null;
}

/** The first non-empty of `name` in lowercase, then uppercase. */
function readEnv(env: Env, name: string): { name: string; value: string } | undefined {
  for (const key of [name.toLowerCase(), name]) {
    const value = env[key];
    if (value !== undefined && value.trim() !== '') return { name: key, value };
  }
  return undefined;
}

/** Parses a proxy URL; a bare `host:port` means `http://host:port`. */
export function parseProxy(text: string, source: string): ProxyChoice {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `http://${text}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    // The value may hold a password: name the variable, not the value.
    throw new ConfigurationError(`${source} is not a valid proxy URL; use e.g. http://user:pass@proxy.example.com:3128`, 'invalid_proxy');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigurationError(
      `${source} is a ${url.protocol.slice(0, -1)}:// proxy; the SDK tunnels only through HTTP proxies (http:// or https://). ` +
        'Set HTTPS_PROXY to an HTTP proxy, or pass proxy: false to connect directly',
      'unsupported_proxy',
    );
  }
  if (!url.hostname) throw new ConfigurationError(`${source} has no host name`, 'invalid_proxy');
  try {
    decodeURIComponent(url.username);
    decodeURIComponent(url.password);
  } catch {
    throw new ConfigurationError(`${source}: the proxy credentials hold a malformed %-escape`, 'invalid_proxy');
  }
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  return {
    url,
    display: `${url.protocol}//${url.hostname}:${port}`,
    source,
    hasCredentials: Boolean(url.username || url.password),
  };
}

/**
 * True when `NO_PROXY` says to reach `host:port` directly. Entries, split on
 * commas or spaces: `*` (everything), a name (`example.com`, `.example.com`
 * or `*.example.com`: that host and its subdomains), an IP address, a CIDR
 * block (`10.0.0.0/8`), each optionally with `:port`.
 */
export function bypassesProxy(host: string, port: number, noProxy: string): boolean {
  const target = host.toLowerCase().replace(/\.$/, '');
  const targetIp = net.isIP(target);
  for (const raw of noProxy.split(/[\s,]+/)) {
    let entry = raw.trim().toLowerCase();
    if (!entry) continue;
    if (entry === '*') return true;
    let entryPort: number | undefined;
    const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry);
    const hostPort = /^([^:]+):(\d+)$/.exec(entry);
    if (bracketed) {
      entry = bracketed[1];
      entryPort = bracketed[2] ? Number(bracketed[2]) : undefined;
    } else if (hostPort) {
      entry = hostPort[1];
      entryPort = Number(hostPort[2]);
    }
    if (entryPort !== undefined && entryPort !== port) continue;
    if (entry.includes('/')) {
      if (targetIp && inCidr(target, targetIp, entry)) return true;
      continue;
    }
    if (net.isIP(entry)) {
      if (targetIp && sameAddress(target, targetIp, entry)) return true;
      continue;
    }
    const domain = entry.replace(/^\*?\./, '').replace(/\.$/, '');
    if (domain && (target === domain || target.endsWith(`.${domain}`))) return true;
  }
  return false;
}

function inCidr(address: string, family: number, cidr: string): boolean {
  const [base, bits] = cidr.split('/');
  const baseFamily = net.isIP(base);
  const prefix = Number(bits);
  if (baseFamily !== family || !/^\d+$/.test(bits) || prefix > (family === 4 ? 32 : 128)) return false;
  const list = new net.BlockList();
  list.addSubnet(base, prefix, family === 4 ? 'ipv4' : 'ipv6');
  return list.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

function sameAddress(address: string, family: number, entry: string): boolean {
  if (net.isIP(entry) !== family) return false;
  const list = new net.BlockList();
  list.addAddress(entry, family === 4 ? 'ipv4' : 'ipv6');
  return list.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

/** What the proxy answered to one tunnel request (CONNECT). */
export interface TunnelAnswer {
  statusCode: number;
  statusText: string;
}

/**
 * An agent for one connection through `proxy`; `onAnswer` hears the proxy's
 * answer to the CONNECT, so that an HTTP error can be told apart from the
 * relay's own answers. TLS options of the WebSocket (`ca`, ...) apply to the
 * relay's TLS inside the tunnel.
 */
export function tunnelAgent(proxy: ProxyChoice, onAnswer: (answer: TunnelAnswer) => void): HttpsProxyAgent<string> {
  // The agent gets the URL without credentials (its debug log prints it) and
  // the credentials as the Proxy-Authorization header it sends on CONNECT.
  const headers: Record<string, string> = {};
  if (proxy.hasCredentials) {
    const user = decodeURIComponent(proxy.url.username);
    const pass = decodeURIComponent(proxy.url.password);
    headers['Proxy-Authorization'] = `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
  }
  const agent = new HttpsProxyAgent<string>(proxy.display, { keepAlive: false, headers });
  agent.on('proxyConnect', (answer: TunnelAnswer) => onAnswer(answer));
  return agent;
}
