'use strict';
// openclaw-parity offline guard: loaded into every Node process of the legacy with
// NODE_OPTIONS="--require <this file>". Loopback (127/8, ::1, ::ffff:127.*, localhost) and unix-socket
// traffic passes; anything else is refused the way the real failure looks (lookup -> ENOTFOUND, connect/send ->
// ECONNREFUSED, always asynchronously) and one line "BLOCKED <api> <target>" is appended to the file named by
// PARITY_GUARD_LOG (stderr when unset). NODE_OPTIONS is inherited, so the gateway's children are guarded too.
const dns = require('dns');
const net = require('net');
const dgram = require('dgram');
const fs = require('fs');

const LOG = process.env.PARITY_GUARD_LOG;

function record(api, target) {
  const line = `BLOCKED ${api} ${target}\n`;
  try {
    if (LOG) fs.appendFileSync(LOG, line); else process.stderr.write(line);
  } catch (_) { /* the guard never throws on logging */ }
}

function isLoopback(host) {
  if (host === undefined || host === null || host === '') return true; // Node defaults to localhost
  let h = String(host).toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  if (h === 'localhost' || h === 'localhost.') return true;
  if (net.isIPv4(h)) return h.startsWith('127.');
  if (net.isIPv6(h)) {
    if (h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
    return h.startsWith('::ffff:') && net.isIPv4(h.slice(7)) && h.slice(7).startsWith('127.');
  }
  return false;
}

function makeError(code, syscall, message, extra) {
  const err = new Error(message);
  err.code = code;
  err.errno = code === 'ENOTFOUND' ? -3008 : -111;
  err.syscall = syscall;
  return Object.assign(err, extra);
}

function lookupError(hostname) {
  return makeError('ENOTFOUND', 'getaddrinfo', `getaddrinfo ENOTFOUND ${hostname}`, { hostname });
}

// dns callback APIs: lookup and the resolve* family, on the module and on dns.Resolver.
const RESOLVERS = ['resolve', 'resolve4', 'resolve6', 'resolveAny', 'resolveCaa', 'resolveCname', 'resolveMx',
  'resolveNaptr', 'resolveNs', 'resolvePtr', 'resolveSoa', 'resolveSrv', 'resolveTxt', 'reverse'];

function wrapCallbackApi(target, name, label) {
  const original = target[name];
  if (typeof original !== 'function') return;
  target[name] = function guarded(hostname, ...rest) {
    if (isLoopback(hostname)) return original.call(this, hostname, ...rest);
    record(label, hostname);
    const cb = rest[rest.length - 1];
    if (typeof cb === 'function') process.nextTick(cb, lookupError(hostname));
    return undefined;
  };
}

function wrapPromiseApi(target, name, label) {
  const original = target[name];
  if (typeof original !== 'function') return;
  target[name] = function guarded(hostname, ...rest) {
    if (isLoopback(hostname)) return original.call(this, hostname, ...rest);
    record(label, hostname);
    return new Promise((_, reject) => process.nextTick(reject, lookupError(hostname)));
  };
}

for (const name of ['lookup', ...RESOLVERS]) {
  wrapCallbackApi(dns, name, `dns.${name}`);
  wrapCallbackApi(dns.Resolver.prototype, name, `dns.Resolver.${name}`);
  wrapPromiseApi(dns.promises, name, `dns.promises.${name}`);
  wrapPromiseApi(dns.promises.Resolver.prototype, name, `dns.promises.Resolver.${name}`);
}

// net.Socket.prototype.connect(options | path | port[, host][, cb]) or the internal normalized array form.
const originalConnect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function guardedConnect(...args) {
  let opts = args[0];
  if (Array.isArray(opts)) opts = opts[0];
  let host;
  let port;
  if (opts !== null && typeof opts === 'object') {
    if (opts.path) return originalConnect.apply(this, args);
    host = opts.host;
    port = opts.port;
  } else if (typeof opts === 'string' && !/^\d+$/.test(opts)) {
    return originalConnect.apply(this, args); // unix socket path
  } else {
    port = opts;
    host = typeof args[1] === 'string' ? args[1] : undefined;
  }
  if (isLoopback(host)) return originalConnect.apply(this, args);
  record('net.connect', `${host}:${port}`);
  const err = makeError('ECONNREFUSED', 'connect', `connect ECONNREFUSED ${host}:${port}`,
    { address: host, port: Number(port) });
  this.connecting = true;
  process.nextTick(() => this.destroy(err));
  return this;
};

// dgram.Socket.prototype.send(msg[, offset, length][, port][, address][, cb]) and connect(port[, address][, cb]).
const originalSend = dgram.Socket.prototype.send;
dgram.Socket.prototype.send = function guardedSend(msg, ...rest) {
  const withRange = typeof rest[0] === 'number' && typeof rest[1] === 'number' && rest.length >= 3 &&
    typeof rest[2] === 'number';
  const tail = withRange ? rest.slice(2) : rest;
  let port = tail[0];
  let address = typeof tail[1] === 'string' ? tail[1] : undefined;
  if (typeof port !== 'number' && typeof port !== 'string') { // connected socket: send(msg[, cb])
    try { const remote = this.remoteAddress(); port = remote.port; address = remote.address; } catch (_) { /* unconnected */ }
  }
  if (isLoopback(address)) return originalSend.call(this, msg, ...rest);
  record('dgram.send', `${address}:${port}`);
  const err = makeError('ECONNREFUSED', 'send', `send ECONNREFUSED ${address}:${port}`, { address, port });
  const cb = rest[rest.length - 1];
  process.nextTick(() => (typeof cb === 'function' ? cb(err) : this.emit('error', err)));
  return undefined;
};
const originalUdpConnect = dgram.Socket.prototype.connect;
dgram.Socket.prototype.connect = function guardedUdpConnect(port, address, cb) {
  const host = typeof address === 'string' ? address : undefined;
  if (isLoopback(host)) return originalUdpConnect.apply(this, arguments);
  record('dgram.connect', `${host}:${port}`);
  const err = makeError('ECONNREFUSED', 'connect', `connect ECONNREFUSED ${host}:${port}`, { address: host, port });
  const callback = typeof address === 'function' ? address : cb;
  process.nextTick(() => (typeof callback === 'function' ? callback(err) : this.emit('error', err)));
  return undefined;
};

try { require('module').syncBuiltinESMExports(); } catch (_) { /* older Node */ }
