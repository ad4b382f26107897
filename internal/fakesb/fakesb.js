'use strict';
// fakesb: a Service Bus-shaped AMQP 1.0 peer for tests, built on rhea.
//
// It exists so the unmodified azservicebus Go SDK can run against a real AMQP peer on
// 127.0.0.1 (connection string with UseDevelopmentEmulator=true, so no TLS). What the SDK
// needs from a broker is written up in /work/shared/reference/servicebus.md; the comments
// below say which SDK behaviour each piece serves.
//
// Model: a namespace of queues. Each queue has a main entity `q` and a dead-letter entity
// `q/$DeadLetterQueue`. Messages are kept as their encoded AMQP sections, so application
// property types survive the round trip (a Go int64 comes back as int64, not as a JS number).
//
// Anything the fake does not implement is refused AND recorded as a "problem" (GET /problems,
// also printed to stderr). The SDK turns most refusals into silent reconnect-and-retry loops,
// so the Go harness fails the test on any recorded problem instead of letting it time out.
//
// Usage: node fakesb.js [--host 127.0.0.1] [--port 0] [--control-port 0] [--queues a,b]
//                       [--lock-ms 30000] [--max-delivery 10] [--state-file path] [--exit-on-stdin-eof]
// (or FAKESB_HOST, FAKESB_PORT, FAKESB_CONTROL_PORT, FAKESB_QUEUES, FAKESB_LOCK_MS,
// FAKESB_MAX_DELIVERY, FAKESB_STATE_FILE, FAKESB_EXIT_ON_STDIN_EOF=1, FAKESB_DEBUG=1).
//
// With a state file the queues outlive the process, as Service Bus's do: every change to a message
// (enqueued, delivered, settled, dead-lettered) is appended to the file before the peer answers, so
// even a kill -9 loses nothing it acknowledged. On start the file is replayed and compacted. Locks
// are not kept: a message locked when the peer stopped is available again (its delivery counted).
// On start it prints one line to stdout: {"amqp":<port>,"control":<port>}.
//
// Control channel (HTTP, JSON bodies, on the same host), used by fakesb.go:
//   POST /send {queue, body | bodyBase64, applicationProperties, messageId, contentType}
//   GET  /stats?queue=q            counters of q (or of q/$DeadLetterQueue)
//   GET  /deadletters?queue=q      messages in q's dead-letter queue
//   POST /expire-locks {queue}     every current lock on q and its DLQ expires now
//   POST /drop-connections         close all AMQP connections with amqp:connection:forced
//   POST /pause, POST /resume      stop listening (and drop connections) / listen again, same port
//   POST /config {queue, lockDurationMs, maxDeliveryCount}
//   GET  /problems, POST /problems/clear

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const net = require('net');
const rhea = require('rhea');

const types = rhea.types;
const amqpMessage = rhea.message;

// ---------------------------------------------------------------------------------------------
// Configuration

function parseConfig(argv, env) {
  const flags = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error('unexpected argument ' + a);
    const eq = a.indexOf('=');
    if (eq > 0) flags[a.slice(2, eq)] = a.slice(eq + 1);
    else if (a === '--exit-on-stdin-eof') flags['exit-on-stdin-eof'] = '1';
    else flags[a.slice(2)] = argv[++i];
  }
  const pick = (flag, name, def) => flags[flag] !== undefined ? flags[flag] : (env[name] !== undefined ? env[name] : def);
  const int = (flag, name, def) => {
    const v = Number(pick(flag, name, def));
    if (!Number.isInteger(v) || v < 0) throw new Error(`--${flag} must be a non-negative integer`);
    return v;
  };
  return {
    host: pick('host', 'FAKESB_HOST', '127.0.0.1'),
    port: int('port', 'FAKESB_PORT', 0),
    controlPort: int('control-port', 'FAKESB_CONTROL_PORT', 0),
    queues: String(pick('queues', 'FAKESB_QUEUES', 'events')).split(',').map(s => s.trim()).filter(Boolean),
    lockMs: int('lock-ms', 'FAKESB_LOCK_MS', 30000),
    maxDelivery: int('max-delivery', 'FAKESB_MAX_DELIVERY', 10),
    stateFile: pick('state-file', 'FAKESB_STATE_FILE', ''),
    exitOnStdinEOF: pick('exit-on-stdin-eof', 'FAKESB_EXIT_ON_STDIN_EOF', '') === '1',
    debug: env.FAKESB_DEBUG === '1',
  };
}

const config = parseConfig(process.argv.slice(2), process.env);

const started = Date.now();

// log lines go to stderr, which the Go harness copies into the test log; the elapsed time helps
// to line them up with the test's own timing.
function log(...args) {
  console.error(`fakesb +${((Date.now() - started) / 1000).toFixed(3)}s:`, ...args);
}
function debug(...args) {
  if (config.debug) log(...args);
}

// ---------------------------------------------------------------------------------------------
// Problems: everything unimplemented or unexpected. The Go harness fails the test on any.

const problems = [];

function problem(kind, detail) {
  const p = `${kind}: ${detail}`;
  problems.push(p);
  log('PROBLEM', p);
}

// A bug in this file must not kill the broker (the SDK would just retry until the test times
// out); record it so the test fails with the stack instead.
process.on('uncaughtException', err => problem('internal error', err && err.stack || String(err)));
process.on('unhandledRejection', err => problem('internal error', err && err.stack || String(err)));

// ---------------------------------------------------------------------------------------------
// Entities

const MAX_MESSAGE_SIZE = 256 * 1024; // Standard tier; the SDK sizes batches from the attach's max-message-size.
const DLQ_SUFFIX = '/$deadletterqueue';
const MGMT_SUFFIX = '/$management';

class Entity {
  constructor(queue, isDeadLetter) {
    this.queue = queue;
    this.isDeadLetter = isDeadLetter;
    this.path = isDeadLetter ? queue.name + '/$DeadLetterQueue' : queue.name;
    this.active = []; // available messages, ordered by sequence number
    this.locked = new Map(); // lock token (hex, RFC byte order) -> message
    this.consumers = new Set(); // our sender links feeding SDK receivers
    this.rr = 0; // round-robin cursor over consumers (competing consumers)
    this.stats = { completed: 0, abandoned: 0, released: 0, delivered: 0, expired: 0 };
  }
}

const queues = new Map(); // lower-cased name -> queue

function addQueue(name) {
  const q = { name, lockMs: config.lockMs, maxDelivery: config.maxDelivery, nextSeq: 1 };
  q.main = new Entity(q, false);
  q.dlq = new Entity(q, true);
  queues.set(name.toLowerCase(), q);
  return q;
}
config.queues.forEach(addQueue);

// resolveEntity maps an address or CBS audience to an entity. Entity names are case-insensitive
// in Service Bus. Returns {entity}, {unsupported: why} for shapes the fake does not model
// (topics, transfer queues), or null for an unknown entity (the SDK's CodeNotFound path).
function resolveEntity(address) {
  if (typeof address !== 'string' || address === '') return null;
  let path = address;
  const scheme = /^[a-z][a-z0-9+.-]*:\/\/[^/]*/i.exec(path);
  if (scheme) path = path.slice(scheme[0].length);
  path = path.replace(/^\/+/, '').toLowerCase();
  if (path.includes('/subscriptions/') || path.includes('/$transfer')) {
    return { unsupported: `entity kind of ${address} (topics and transfer queues are not implemented)` };
  }
  let dead = false;
  if (path.endsWith(DLQ_SUFFIX)) {
    dead = true;
    path = path.slice(0, -DLQ_SUFFIX.length);
  }
  const q = queues.get(path);
  if (!q) return null;
  return { entity: dead ? q.dlq : q.main };
}

function allMessages(entity) {
  return entity.active.concat([...entity.locked.values()]).sort((a, b) => a.seq - b.seq);
}

function insertBySeq(list, msg) {
  let i = list.length;
  while (i > 0 && list[i - 1].seq > msg.seq) i--;
  list.splice(i, 0, msg);
}

// ---------------------------------------------------------------------------------------------
// Message encoding. A stored message keeps the sender's sections as rhea Typed values or raw
// bytes; the broker-owned parts (header delivery-count, x-opt-* annotations) are rebuilt on
// every delivery.

const SECTION_CODES = {
  'amqp:header:list': 0x70, 'amqp:delivery-annotations:map': 0x71, 'amqp:message-annotations:map': 0x72,
  'amqp:properties:list': 0x73, 'amqp:application-properties:map': 0x74, 'amqp:data:binary': 0x75,
  'amqp:amqp-sequence:list': 0x76, 'amqp:value:*': 0x77, 'amqp:footer:map': 0x78,
};

const RAW = Symbol('raw');

// rhea decodes format-0 transfers into plain JS values and drops the bytes; keep them so stored
// messages can be re-sent with their original AMQP types.
const rheaDecode = amqpMessage.decode;
amqpMessage.decode = function (buf) {
  const m = rheaDecode(buf);
  Object.defineProperty(m, RAW, { value: buf });
  return m;
};

const BROKER_ANNOTATIONS = new Set(['x-opt-sequence-number', 'x-opt-enqueued-time', 'x-opt-locked-until', 'x-opt-deadletter-source', 'x-opt-lock-token']);

function sectionCode(descriptor) {
  const v = descriptor && descriptor.value;
  if (typeof v === 'number') return v;
  if (typeof v === 'string') return SECTION_CODES[v];
  return undefined;
}

// mapPairs turns a decoded AMQP map (Typed, items k,v,k,v) into [[keyTyped, valueTyped], ...].
function mapPairs(typedMap) {
  const pairs = [];
  if (!typedMap || !Array.isArray(typedMap.value)) return pairs;
  for (let i = 0; i + 1 < typedMap.value.length; i += 2) pairs.push([typedMap.value[i], typedMap.value[i + 1]]);
  return pairs;
}

function setPair(pairs, name, typedValue) {
  const i = pairs.findIndex(([k]) => k.value === name);
  if (i >= 0) pairs[i] = [pairs[i][0], typedValue];
  else pairs.push([types.wrap_string(name), typedValue]);
}

function getPair(pairs, name) {
  const p = pairs.find(([k]) => k.value === name);
  return p ? types.unwrap(p[1]) : undefined;
}

function mapSection(code, pairs) {
  return types.described(types.wrap_ulong(code), types.Map32([].concat(...pairs)));
}

function writeSections(sections) {
  const w = new types.Writer();
  for (const s of sections) {
    if (Buffer.isBuffer(s)) w.write_bytes(s);
    else w.write(s);
  }
  return w.toBuffer();
}

// parseStored splits one encoded message into the parts the broker keeps. Delivery annotations
// are dropped: they are hop-by-hop and Service Bus does not forward them.
function parseStored(buf) {
  const r = new types.Reader(buf);
  const m = { header: null, annotations: [], properties: null, appProps: [], body: [], footer: null };
  while (r.remaining()) {
    const start = r.position;
    const s = r.read();
    const raw = buf.subarray(start, r.position);
    switch (sectionCode(s.descriptor)) {
    case 0x70: m.header = s; break;
    case 0x71: break;
    case 0x72: m.annotations = mapPairs(s).filter(([k]) => !BROKER_ANNOTATIONS.has(k.value)); break;
    case 0x73: m.properties = Buffer.from(raw); break;
    case 0x74: m.appProps = mapPairs(s); break;
    case 0x75: case 0x76: case 0x77: m.body.push(Buffer.from(raw)); break;
    case 0x78: m.footer = Buffer.from(raw); break;
    default: throw new Error('unknown message section ' + JSON.stringify(s.descriptor));
    }
  }
  if (!m.properties) {
    // The SDK reads the header's delivery-count only when a properties section exists.
    m.properties = writeSections([amqpMessage.properties({}).described()]);
  }
  const info = amqpMessage.decode(Buffer.concat([m.properties]));
  m.messageId = info.message_id === undefined ? null : String(info.message_id);
  return m;
}

function encodeStored(msg, headerDeliveryCount, extra) {
  const h = msg.header ? msg.header.value.slice(0, 4) : [];
  while (h.length < 4) h.push(types.Null());
  const header = types.described(types.wrap_ulong(0x70), types.List32(h.concat([types.wrap_uint(headerDeliveryCount)])));

  // The SDK type-asserts these without checking: sequence number must be a long, times must be
  // timestamps, or the receiver panics.
  const ann = msg.annotations.slice();
  ann.push([types.wrap_symbol('x-opt-sequence-number'), types.Long(msg.seq)]);
  ann.push([types.wrap_symbol('x-opt-enqueued-time'), types.wrap_timestamp(msg.enqueuedTime)]);
  if (extra.lockedUntil) ann.push([types.wrap_symbol('x-opt-locked-until'), types.wrap_timestamp(extra.lockedUntil)]);
  if (msg.deadLetterSource) ann.push([types.wrap_symbol('x-opt-deadletter-source'), types.wrap_string(msg.deadLetterSource)]);

  const sections = [header, mapSection(0x72, ann), msg.properties];
  if (msg.appProps.length) sections.push(mapSection(0x74, msg.appProps));
  sections.push(...msg.body);
  if (msg.footer) sections.push(msg.footer);
  return writeSections(sections);
}

// jsonValue makes a decoded AMQP value printable for the control channel.
function jsonValue(v) {
  if (Buffer.isBuffer(v)) return v.toString('base64');
  if (v instanceof Date) return v.toISOString();
  if (Array.isArray(v)) return v.map(jsonValue);
  if (v && typeof v === 'object') {
    const o = {};
    for (const k of Object.keys(v)) o[k] = jsonValue(v[k]);
    return o;
  }
  return v;
}

function bodyBytes(msg) {
  const info = amqpMessage.decode(Buffer.concat(msg.body));
  const b = info.body;
  if (b && b.typecode === 0x75) return b.multiple ? Buffer.concat(b.content) : b.content;
  if (Buffer.isBuffer(b)) return b;
  if (typeof b === 'string') return Buffer.from(b);
  return Buffer.from(JSON.stringify(jsonValue(b === undefined ? null : b)));
}

function describe(msg) {
  const props = {};
  for (const [k, v] of msg.appProps) props[k.value] = jsonValue(types.unwrap(v));
  return {
    sequenceNumber: msg.seq,
    messageId: msg.messageId,
    body: bodyBytes(msg).toString('base64'),
    reason: msg.deadLetterReason || '',
    description: msg.deadLetterDescription || '',
    deliveryCount: msg.deliveryCount,
    applicationProperties: props,
  };
}

// ---------------------------------------------------------------------------------------------
// Persistence (--state-file): an append-only journal of one JSON record per line, written
// synchronously before the change is acknowledged. put: the whole message as stored in an entity;
// count: its delivery count changed; del: it left the entity.

let journal = null; // file descriptor, or null without a state file

function journalWrite(record) {
  if (journal !== null) fs.writeSync(journal, JSON.stringify(record) + '\n');
}

function putRecord(entity, msg) {
  return {
    op: 'put', entity: entity.path, seq: msg.seq, enqueued: msg.enqueuedTime, count: msg.deliveryCount,
    deadLetter: msg.deadLetterSource ? [msg.deadLetterReason, msg.deadLetterDescription, msg.deadLetterSource] : null,
    raw: encodeStored(msg, 0, {}).toString('base64'),
  };
}

function persistPut(entity, msg) {
  if (journal !== null) journalWrite(putRecord(entity, msg));
}

function persistCount(entity, msg) {
  journalWrite({ op: 'count', entity: entity.path, seq: msg.seq, count: msg.deliveryCount });
}

function persistDelete(entity, msg) {
  journalWrite({ op: 'del', entity: entity.path, seq: msg.seq });
}

// loadState replays the journal into the queues (adding queues it names that the flags do not),
// then rewrites it compacted and keeps it open for appending.
function loadState(file) {
  const records = new Map(); // entity path + seq -> put record
  let text = '';
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if (err.code !== 'ENOENT') throw err;
  }
  for (const line of text.split('\n')) {
    if (!line) continue;
    let r;
    try {
      r = JSON.parse(line);
    } catch (err) {
      // A torn last line (the process died mid-write): that change was never acknowledged.
      log(`state file: skipping a partial record`);
      continue;
    }
    const key = r.entity.toLowerCase() + '#' + r.seq;
    if (r.op === 'put') records.set(key, r);
    else if (r.op === 'count' && records.has(key)) records.get(key).count = r.count;
    else if (r.op === 'del') records.delete(key);
  }
  let restored = 0;
  for (const r of records.values()) {
    const path = r.entity.toLowerCase();
    const name = path.endsWith(DLQ_SUFFIX) ? r.entity.slice(0, -DLQ_SUFFIX.length) : r.entity;
    if (!queues.has(name.toLowerCase())) addQueue(name);
    const entity = resolveEntity(r.entity).entity;
    const msg = parseStored(Buffer.from(r.raw, 'base64'));
    Object.assign(msg, { seq: r.seq, enqueuedTime: r.enqueued, deliveryCount: r.count, lock: null });
    if (r.deadLetter) [msg.deadLetterReason, msg.deadLetterDescription, msg.deadLetterSource] = r.deadLetter;
    insertBySeq(entity.active, msg);
    entity.queue.nextSeq = Math.max(entity.queue.nextSeq, r.seq + 1);
    restored++;
  }
  const tmp = file + '.tmp';
  const fd = fs.openSync(tmp, 'w');
  for (const q of queues.values()) {
    for (const e of [q.main, q.dlq]) {
      for (const m of e.active) fs.writeSync(fd, JSON.stringify(putRecord(e, m)) + '\n');
    }
  }
  fs.closeSync(fd);
  fs.renameSync(tmp, file);
  journal = fs.openSync(file, 'a');
  log(`state file ${file}: ${restored} message(s) restored`);
}

// ---------------------------------------------------------------------------------------------
// Queue operations

function enqueue(entity, stored) {
  const q = entity.queue;
  const msg = Object.assign(stored, { seq: q.nextSeq++, enqueuedTime: Date.now(), deliveryCount: 0, lock: null });
  insertBySeq(entity.active, msg);
  persistPut(entity, msg);
  debug(`enqueued seq=${msg.seq} id=${msg.messageId} on ${entity.path}`);
  return msg;
}

// availableCredit is the link credit not yet spoken for. rhea only decrements link.credit when
// it writes the transfer (next tick), so deliveries queued in this tick must be subtracted.
function availableCredit(link) {
  const out = link.session.outgoing;
  if (out.available() <= 0) return 0;
  let pending = 0;
  for (let id = out.next_pending_delivery; id < out.next_delivery_id; id++) {
    const d = out.deliveries.by_id(id);
    if (d && d.link === link) pending++;
  }
  return link.credit - pending;
}

function pump(entity) {
  const links = [...entity.consumers];
  let idle = 0;
  while (entity.active.length && links.length && idle < links.length) {
    const link = links[entity.rr++ % links.length];
    if (link.is_open() && availableCredit(link) > 0) {
      deliver(entity, link, entity.active.shift());
      idle = 0;
    } else {
      idle++;
    }
  }
}

// dotnetGuidBytes converts between RFC 4122 byte order and .NET Guid byte order (the swap is its
// own inverse). The SDK reads the lock token from the 16-byte delivery tag this way.
function dotnetGuidBytes(b) {
  const t = Buffer.from(b);
  [t[0], t[1], t[2], t[3]] = [b[3], b[2], b[1], b[0]];
  [t[4], t[5]] = [b[5], b[4]];
  [t[6], t[7]] = [b[7], b[6]];
  return t;
}

function deliver(entity, link, msg) {
  entity.stats.delivered++;
  // Header delivery-count is the number of earlier deliveries; the SDK shows it plus one.
  const headerCount = msg.deliveryCount;
  msg.deliveryCount++;
  if (link.fakesb.mode === 'receiveAndDelete') {
    // Pre-settled transfer: the message is gone the moment it is sent.
    persistDelete(entity, msg);
    link.send(encodeStored(msg, headerCount, {}), crypto.randomBytes(16), 0);
    debug(`delivered (receive-and-delete) seq=${msg.seq} from ${entity.path}`);
    return;
  }
  persistCount(entity, msg);
  const token = crypto.randomBytes(16);
  const hex = token.toString('hex');
  msg.lock = { token: hex, until: Date.now() + entity.queue.lockMs, timer: null };
  armLockTimer(entity, msg);
  entity.locked.set(hex, msg);
  const delivery = link.send(encodeStored(msg, headerCount, { lockedUntil: msg.lock.until }), dotnetGuidBytes(token), 0);
  delivery.fakesb = { entity, msg, token: hex };
  debug(`delivered (peek-lock) seq=${msg.seq} from ${entity.path} count=${msg.deliveryCount}`);
}

function armLockTimer(entity, msg) {
  clearTimeout(msg.lock.timer);
  const hex = msg.lock.token;
  msg.lock.timer = setTimeout(() => lockExpired(entity, msg, hex), Math.max(0, msg.lock.until - Date.now()));
}

function holdsLock(entity, msg, hex) {
  return entity.locked.get(hex) === msg && msg.lock && msg.lock.token === hex;
}

function unlock(entity, msg) {
  clearTimeout(msg.lock.timer);
  entity.locked.delete(msg.lock.token);
  msg.lock = null;
}

function lockExpired(entity, msg, hex) {
  if (!holdsLock(entity, msg, hex)) return;
  unlock(entity, msg);
  entity.stats.expired++;
  debug(`lock expired seq=${msg.seq} on ${entity.path}`);
  returnOrDeadLetter(entity, msg);
}

// returnOrDeadLetter runs after an abandon or a lost lock: the delivery counted, so the message
// either goes back to the queue or, at MaxDeliveryCount, to the dead-letter queue. Messages in a
// dead-letter queue are never dead-lettered again.
function returnOrDeadLetter(entity, msg) {
  const max = entity.queue.maxDelivery;
  if (!entity.isDeadLetter && msg.deliveryCount >= max) {
    deadLetter(entity, msg, 'MaxDeliveryCountExceeded', `Message could not be consumed after ${max} delivery attempts.`, []);
    return;
  }
  insertBySeq(entity.active, msg);
  pump(entity);
}

function complete(entity, msg) {
  unlock(entity, msg);
  entity.stats.completed++;
  persistDelete(entity, msg);
}

function release(entity, msg) {
  unlock(entity, msg);
  msg.deliveryCount--; // a release is not a delivery attempt
  entity.stats.released++;
  persistCount(entity, msg);
  insertBySeq(entity.active, msg);
  pump(entity);
}

function abandon(entity, msg, propsToModify) {
  unlock(entity, msg);
  entity.stats.abandoned++;
  for (const [k, v] of propsToModify) setPair(msg.appProps, String(k.value), v);
  if (propsToModify.length) persistPut(entity, msg);
  returnOrDeadLetter(entity, msg);
}

function deadLetter(entity, msg, reason, description, propsToModify) {
  if (msg.lock) unlock(entity, msg);
  for (const [k, v] of propsToModify) setPair(msg.appProps, String(k.value), v);
  // Service Bus reports these as application properties (the SDK reads them from there).
  setPair(msg.appProps, 'DeadLetterReason', types.wrap_string(reason));
  setPair(msg.appProps, 'DeadLetterErrorDescription', types.wrap_string(description));
  msg.deadLetterReason = reason;
  msg.deadLetterDescription = description;
  msg.deadLetterSource = entity.queue.name;
  const dlq = entity.queue.dlq;
  persistDelete(entity, msg);
  insertBySeq(dlq.active, msg);
  persistPut(dlq, msg);
  log(`dead-lettered seq=${msg.seq} from ${entity.path}: ${reason}`);
  pump(dlq);
}

// ---------------------------------------------------------------------------------------------
// Settlement on the receive link (peek-lock). The SDK settles with rcv-settle-mode second: it
// sends an unsettled disposition and waits for ours; a rejected state with an error becomes
// the SDK's error (message-lock-lost -> CodeLockLost).

const LOCK_LOST = {
  condition: 'com.microsoft:message-lock-lost',
  description: 'The lock supplied is invalid. Either the lock expired, or the message has already been removed from the queue.',
};

function settle(delivery, state) {
  delivery.update(true, state);
  // The SDK never settles after us (mode second), so mark it settled for rhea to free the slot.
  delivery.remote_settled = true;
}

function onOutcome(context, outcome) {
  const delivery = context.delivery;
  const link = context.sender;
  if (!link.fakesb || link.fakesb.kind !== 'consumer') {
    problem('protocol', `${outcome} disposition on a ${link.fakesb ? link.fakesb.kind : 'unknown'} link`);
    return;
  }
  const ref = delivery.fakesb;
  if (!ref || link.fakesb.mode !== 'peekLock') return; // pre-settled: nothing to do
  const { entity, msg, token } = ref;
  if (!holdsLock(entity, msg, token)) {
    debug(`late ${outcome} for seq=${msg.seq}: lock lost`);
    settle(delivery, amqpMessage.rejected({ error: LOCK_LOST }).described());
    return;
  }
  const state = delivery.remote_state;
  switch (outcome) {
  case 'accepted':
    complete(entity, msg);
    settle(delivery, amqpMessage.accepted().described());
    break;
  case 'released':
    release(entity, msg);
    settle(delivery, amqpMessage.released().described());
    break;
  case 'modified':
    if (state.undeliverable_here) {
      // DeferMessage. Left out on purpose: nothing in this project defers.
      problem('unimplemented', 'DeferMessage (modified with undeliverable-here)');
      settle(delivery, amqpMessage.rejected({ error: { condition: 'amqp:not-implemented', description: 'fakesb: defer is not implemented' } }).described());
      break;
    }
    abandon(entity, msg, mapPairs(state.value[2]));
    settle(delivery, amqpMessage.modified({ delivery_failed: state.delivery_failed, undeliverable_here: false }).described());
    break;
  case 'rejected': {
    const err = state.value[0]; // raw error list: condition, description, info
    const fields = err && Array.isArray(err.value) ? err.value : [];
    const condition = fields[0] ? fields[0].value : undefined;
    if (condition !== 'com.microsoft:dead-letter') {
      problem('unimplemented', `rejected outcome with condition ${condition} (only com.microsoft:dead-letter is modelled)`);
    }
    const info = mapPairs(fields[2]);
    const reason = getPair(info, 'DeadLetterReason');
    const description = getPair(info, 'DeadLetterErrorDescription');
    const others = info.filter(([k]) => k.value !== 'DeadLetterReason' && k.value !== 'DeadLetterErrorDescription');
    if (entity.isDeadLetter) {
      problem('unimplemented', 'dead-lettering a message that is already in a dead-letter queue');
      settle(delivery, amqpMessage.rejected({ error: { condition: 'amqp:not-allowed', description: 'fakesb: already dead-lettered' } }).described());
      break;
    }
    deadLetter(entity, msg, reason == null ? '' : String(reason), description == null ? '' : String(description), others);
    // A rejected state without an error: go-amqp would hand an error back to DeadLetterMessage.
    settle(delivery, amqpMessage.rejected({}).described());
    break;
  }
  default:
    problem('unimplemented', `delivery outcome ${outcome}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Request/response: $cbs and <entity>/$management. The SDK opens a sender to the node and a
// receiver from it whose target is its own odd reply address; replies go to the link whose
// target equals the request's reply-to, and must carry correlation-id = request message-id and
// an int32 status-code.

function reply(conn, request, status, description, body) {
  const link = conn.fakesb.replyLinks.get(request.reply_to);
  if (!link) {
    problem('protocol', `no reply link for reply-to ${JSON.stringify(request.reply_to)}`);
    return;
  }
  link.send({
    correlation_id: request.message_id,
    application_properties: {
      'status-code': types.Int(status),
      'status-description': description,
    },
    body: body === undefined ? null : body,
  });
}

function onCbsRequest(context) {
  const req = context.message;
  const props = req.application_properties || {};
  if (props.operation !== 'put-token') {
    problem('unimplemented', `$cbs operation ${JSON.stringify(props.operation)}`);
    reply(context.connection, req, 501, 'fakesb: not implemented');
    return;
  }
  // Any token is accepted; the audience says which entity the client wants. A missing entity
  // is a 404 here, which the SDK maps to CodeNotFound.
  let path = String(props.name || '');
  path = path.replace(/\/\$management$/i, '');
  const found = resolveEntity(path);
  if (found && found.unsupported) {
    problem('unimplemented', found.unsupported);
    reply(context.connection, req, 501, 'fakesb: not implemented');
  } else if (!found) {
    reply(context.connection, req, 404, `The messaging entity '${props.name}' could not be found.`);
  } else {
    reply(context.connection, req, 202, 'Accepted');
  }
}

function mgmtBodyPairs(req) {
  // The decoded body loses AMQP types; properties-to-modify keeps them by re-reading the raw value.
  const raw = req[RAW];
  if (!raw) return [];
  const r = new types.Reader(raw);
  while (r.remaining()) {
    const s = r.read();
    if (sectionCode(s.descriptor) === 0x77) return mapPairs(s);
  }
  return [];
}

function lockTokens(body) {
  const v = body && body['lock-tokens'];
  return Array.isArray(v) ? v.map(b => Buffer.from(b).toString('hex')) : [];
}

function onMgmtRequest(context) {
  const req = context.message;
  const entity = context.receiver.fakesb.entity;
  const props = req.application_properties || {};
  const op = props.operation;
  const body = req.body && typeof req.body === 'object' ? req.body : {};
  const conn = context.connection;
  switch (op) {
  case 'com.microsoft:renew-lock': {
    const tokens = lockTokens(body);
    const msgs = tokens.map(t => entity.locked.get(t));
    if (!tokens.length || msgs.some(m => !m)) {
      reply(conn, req, 410, LOCK_LOST.description);
      return;
    }
    const until = Date.now() + entity.queue.lockMs;
    for (const m of msgs) {
      m.lock.until = until;
      armLockTimer(entity, m);
    }
    // An AMQP array of timestamps, not a list: the SDK asserts []time.Time.
    reply(conn, req, 200, 'OK', types.wrap_map({ expirations: types.wrap_array(msgs.map(m => m.lock.until), types.Timestamp.typecode) }));
    return;
  }
  case 'com.microsoft:update-disposition': {
    const status = body['disposition-status'];
    const tokens = lockTokens(body);
    const msgs = tokens.map(t => entity.locked.get(t));
    if (status === 'defered' || status === 'deferred') {
      problem('unimplemented', 'update-disposition defered');
      reply(conn, req, 501, 'fakesb: defer is not implemented');
      return;
    }
    if (!['completed', 'abandoned', 'suspended'].includes(status)) {
      problem('unimplemented', `update-disposition status ${JSON.stringify(status)}`);
      reply(conn, req, 501, 'fakesb: not implemented');
      return;
    }
    if (status === 'suspended' && entity.isDeadLetter) {
      problem('unimplemented', 'dead-lettering a message that is already in a dead-letter queue');
      reply(conn, req, 501, 'fakesb: already dead-lettered');
      return;
    }
    if (!tokens.length || msgs.some(m => !m)) {
      reply(conn, req, 410, LOCK_LOST.description);
      return;
    }
    const modify = mapPairs((mgmtBodyPairs(req).find(([k]) => k.value === 'properties-to-modify') || [])[1]);
    for (const m of msgs) {
      if (status === 'completed') complete(entity, m);
      else if (status === 'abandoned') abandon(entity, m, modify);
      else deadLetter(entity, m, String(body['deadletter-reason'] || ''), String(body['deadletter-description'] || ''), modify);
    }
    reply(conn, req, 200, 'OK');
    return;
  }
  case 'com.microsoft:peek-message': {
    const from = Number(body['from-sequence-number'] || 0);
    const count = Number(body['message-count'] || 1);
    const msgs = allMessages(entity).filter(m => m.seq >= from).slice(0, count);
    if (!msgs.length) {
      reply(conn, req, 204, 'No Content');
      return;
    }
    // Header count as a receive would show it; peeking does not count as a delivery.
    const list = msgs.map(m => ({ message: encodeStored(m, m.deliveryCount, { lockedUntil: m.lock && m.lock.until }) }));
    reply(conn, req, 200, 'OK', types.wrap_map({ messages: list }));
    return;
  }
  default:
    // receive-by-sequence-number, schedule/cancel, sessions, rules...: not modelled. The SDK
    // retries a 501 as a connection failure, hence the problem record.
    problem('unimplemented', `$management operation ${JSON.stringify(op)} on ${entity.path}`);
    reply(conn, req, 501, `fakesb: ${op} is not implemented`);
  }
}

// ---------------------------------------------------------------------------------------------
// Ingress: messages sent by SDK senders (single transfers and batches).

const BATCH_FORMAT = 0x80013700;

function onIngress(context) {
  const entity = context.receiver.fakesb.entity;
  const delivery = context.delivery;
  try {
    let encoded;
    if (context.format === undefined) {
      encoded = [context.message[RAW]];
    } else if (context.format === BATCH_FORMAT) {
      // A batch envelope carries one data section per inner, fully encoded message.
      encoded = [];
      const r = new types.Reader(context.message);
      while (r.remaining()) {
        const s = r.read();
        if (sectionCode(s.descriptor) === 0x75) encoded.push(s.value);
      }
    } else {
      problem('unimplemented', `message format 0x${context.format.toString(16)}`);
      delivery.reject({ condition: 'amqp:not-implemented', description: 'fakesb: unknown message format' });
      return;
    }
    const size = context.format === undefined ? context.message[RAW].length : context.message.length;
    if (size > MAX_MESSAGE_SIZE) {
      delivery.reject({ condition: 'amqp:link:message-size-exceeded', description: `message of ${size} bytes exceeds ${MAX_MESSAGE_SIZE}` });
      return;
    }
    const parsed = encoded.map(parseStored);
    parsed.forEach(m => enqueue(entity, m));
    delivery.accept();
    pump(entity);
  } catch (err) {
    problem('protocol', `could not decode message sent to ${entity.path}: ${err.message}`);
    delivery.reject({ condition: 'amqp:decode-error', description: err.message });
  }
}

// ---------------------------------------------------------------------------------------------
// Links

function refuse(link, condition, description, isProblem) {
  if (isProblem) problem('unimplemented', description);
  else log(`refused link ${link.name}: ${condition}: ${description}`);
  // An attach without a terminus, then a detach with the error: go-amqp returns that error.
  link.close({ condition, description });
}

function track(link, info) {
  link.fakesb = info;
  link.connection.fakesb.links.add(link);
}

// forgetLink is idempotent: links end by detach, by session end (rhea fires no link event for
// that) or with their connection.
function forgetLink(link) {
  const info = link.fakesb;
  if (!info || info.forgotten) return;
  info.forgotten = true;
  const c = link.connection.fakesb;
  c.links.delete(link);
  if (info.kind === 'consumer') info.entity.consumers.delete(link);
  if (info.kind === 'reply' && c.replyLinks.get(info.address) === link) c.replyLinks.delete(info.address);
  debug(`link ${link.name} (${info.kind}) gone`);
}

// The SDK's receivers (we send): consumers of an entity, or the reply half of an RPC pair.
function onPeerReceiverAttach(context) {
  const link = context.sender;
  const remote = link.remote.attach;
  const source = remote.source;
  const target = remote.target;
  const address = source && source.address;
  link.local.attach.snd_settle_mode = remote.snd_settle_mode;
  link.local.attach.rcv_settle_mode = remote.rcv_settle_mode;
  if (!address) return refuse(link, 'amqp:not-implemented', `receiver link ${link.name} without a source address`, true);
  if (address === '$cbs' || address.toLowerCase().endsWith(MGMT_SUFFIX)) {
    const replyTo = target && target.address;
    if (!replyTo) return refuse(link, 'amqp:not-implemented', `reply link from ${address} without a target address`, true);
    link.set_source({ address });
    link.set_target({ address: replyTo });
    track(link, { kind: 'reply', address: replyTo });
    link.connection.fakesb.replyLinks.set(replyTo, link);
    return;
  }
  const found = resolveEntity(address);
  if (found && found.unsupported) return refuse(link, 'amqp:not-implemented', found.unsupported, true);
  if (!found) return refuse(link, 'amqp:not-found', `The messaging entity '${address}' could not be found.`, false);
  const filter = source.filter;
  if (filter && Object.keys(filter).length) {
    return refuse(link, 'amqp:not-implemented', `receiver filters ${Object.keys(filter).join(',')} on ${address} (sessions are not implemented)`, true);
  }
  let mode;
  if (remote.snd_settle_mode === 1) mode = 'receiveAndDelete';
  else if (remote.rcv_settle_mode === 1) mode = 'peekLock';
  else return refuse(link, 'amqp:not-implemented', `receiver on ${address} with snd-settle-mode ${remote.snd_settle_mode} and rcv-settle-mode ${remote.rcv_settle_mode}`, true);
  link.set_source({ address });
  link.set_target(target ? { address: target.address } : {});
  track(link, { kind: 'consumer', entity: found.entity, mode });
  found.entity.consumers.add(link);
  log(`receiver attached to ${found.entity.path} (${mode})`);
}

// The SDK's senders (we receive): entity ingress, $cbs requests, $management requests.
function onPeerSenderAttach(context) {
  const link = context.receiver;
  const remote = link.remote.attach;
  const target = remote.target;
  const address = target && target.address;
  link.local.attach.snd_settle_mode = remote.snd_settle_mode;
  link.local.attach.rcv_settle_mode = remote.rcv_settle_mode;
  if (!address) return refuse(link, 'amqp:not-implemented', `sender link ${link.name} without a target address (transactions are not implemented)`, true);
  const accept = info => {
    link.set_target({ address });
    link.set_source(remote.source ? { address: remote.source.address } : {});
    track(link, info);
  };
  if (address === '$cbs') return accept({ kind: 'cbs' });
  if (address.toLowerCase().endsWith(MGMT_SUFFIX)) {
    const found = resolveEntity(address.slice(0, -MGMT_SUFFIX.length));
    if (found && found.unsupported) return refuse(link, 'amqp:not-implemented', found.unsupported, true);
    if (!found) return refuse(link, 'amqp:not-found', `The messaging entity '${address}' could not be found.`, false);
    return accept({ kind: 'mgmt', entity: found.entity });
  }
  const found = resolveEntity(address);
  if (found && found.unsupported) return refuse(link, 'amqp:not-implemented', found.unsupported, true);
  if (!found) return refuse(link, 'amqp:not-found', `The messaging entity '${address}' could not be found.`, false);
  if (found.entity.isDeadLetter) return refuse(link, 'amqp:not-allowed', `sending to a dead-letter queue (${address})`, true);
  link.local.attach.max_message_size = MAX_MESSAGE_SIZE;
  accept({ kind: 'ingress', entity: found.entity });
  log(`sender attached to ${found.entity.path}`);
}

// ---------------------------------------------------------------------------------------------
// AMQP server

const container = rhea.create_container({ id: 'fakesb' });

const connectionOptions = {
  // Links the peer opens are created by rhea with these options: we settle by hand, and an
  // abandon (modified) must not be reported as a release.
  sender_options: { autosettle: false, treat_modified_as_released: false },
  receiver_options: { autoaccept: false },
  // The SDK never settles peek-lock deliveries after we do; a bigger window leaves room.
  session_buffer_size: 65536,
  // Without it Nagle's algorithm meets delayed ACKs and every request/response costs ~40 ms.
  tcp_no_delay: true,
};

container.on('sender_open', onPeerReceiverAttach);
container.on('receiver_open', onPeerSenderAttach);
container.on('sendable', context => {
  const info = context.sender.fakesb;
  if (info && info.kind === 'consumer') pump(info.entity);
});
container.on('sender_draining', context => {
  const info = context.sender.fakesb;
  if (info && info.kind === 'consumer') pump(info.entity);
  context.sender.set_drained(true);
});
container.on('message', context => {
  const info = context.receiver.fakesb;
  if (!info) return;
  if (info.kind === 'ingress') onIngress(context);
  else if (info.kind === 'cbs' || info.kind === 'mgmt') {
    context.delivery.accept();
    if (info.kind === 'cbs') onCbsRequest(context);
    else onMgmtRequest(context);
  } else problem('protocol', `transfer on ${info.kind} link`);
});
for (const outcome of ['accepted', 'released', 'modified', 'rejected']) {
  container.on(outcome, context => onOutcome(context, outcome));
}
container.on('sender_close', context => forgetLink(context.sender));
container.on('receiver_close', context => forgetLink(context.receiver));
// Handled so rhea does not turn a client's detach-with-error into a container 'error'.
container.on('sender_error', context => log('sender link error', JSON.stringify(context.sender.error)));
container.on('receiver_error', context => log('receiver link error', JSON.stringify(context.receiver.error)));
container.on('session_close', context => {
  for (const name of Object.keys(context.session.links)) forgetLink(context.session.links[name]);
});
container.on('session_error', context => log('session error', JSON.stringify(context.session.error)));
container.on('connection_open', context => log(`connection open (${Object.keys(connections).length} live)`));
container.on('connection_error', context => log('connection error', JSON.stringify(context.connection.error)));
container.on('protocol_error', err => problem('protocol', String(err)));
container.on('error', err => problem('protocol', err && err.message || String(err)));

const connections = {}; // id -> {conn, socket}
let nextConnId = 1;

function connectionGone(id) {
  const entry = connections[id];
  if (!entry) return;
  delete connections[id];
  for (const link of [...entry.conn.fakesb.links]) forgetLink(link);
  log(`connection closed (${Object.keys(connections).length} live)`);
}

const amqpServer = net.createServer(socket => {
  const id = nextConnId++;
  const conn = container.create_connection(Object.assign({ id: 'conn-' + id }, connectionOptions));
  conn.fakesb = { links: new Set(), replyLinks: new Map() };
  connections[id] = { conn, socket };
  socket.on('close', () => connectionGone(id));
  socket.on('error', err => debug(`socket error: ${err.message}`));
  conn.on('disconnected', () => connectionGone(id));
  conn.accept(socket);
});

// dropConnections closes every connection the way Service Bus does on a gateway restart:
// close with amqp:connection:forced, then the socket. Queue state is kept.
function dropConnections() {
  const entries = Object.keys(connections).map(id => [id, connections[id]]);
  for (const [id, { conn, socket }] of entries) {
    try {
      conn.close({ condition: 'amqp:connection:forced', description: 'fakesb: connection dropped by the test' });
    } catch (err) {
      debug(`close failed: ${err.message}`);
    }
    // Give the close frame a moment to go out, then make sure the socket is gone.
    setTimeout(() => socket.destroy(), 50);
    connectionGone(id);
  }
  return entries.length;
}

let paused = false;

function listenAmqp(port) {
  return new Promise((resolve, reject) => {
    amqpServer.once('error', reject);
    amqpServer.listen({ host: config.host, port }, () => {
      amqpServer.removeListener('error', reject);
      resolve(amqpServer.address().port);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Control channel (HTTP JSON on the same host), for tests.

class HTTPError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function queueFor(name) {
  const q = queues.get(String(name || '').toLowerCase());
  if (!q) throw new HTTPError(404, `unknown queue ${JSON.stringify(name)}`);
  return q;
}

// typedProperty maps a JSON application property to an AMQP type: strings, booleans, integers
// as long (Go int64), other numbers as double, null.
function typedProperty(name, v) {
  if (v === null) return types.Null();
  if (typeof v === 'string') return types.wrap_string(v);
  if (typeof v === 'boolean') return types.wrap_boolean(v);
  if (typeof v === 'number') return Number.isInteger(v) ? types.Long(v) : types.Double(v);
  throw new HTTPError(400, `application property ${name}: only strings, numbers, booleans and null are supported`);
}

function controlSend(req) {
  const q = queueFor(req.queue);
  let body;
  if (req.bodyBase64 !== undefined) body = Buffer.from(String(req.bodyBase64 || ''), 'base64'); // Go sends a nil []byte as null
  else if (req.body !== undefined) body = Buffer.from(String(req.body));
  else throw new HTTPError(400, 'body or bodyBase64 is required');
  const props = { message_id: req.messageId ? String(req.messageId) : crypto.randomUUID() };
  if (req.contentType) props.content_type = String(req.contentType);
  const appProps = Object.entries(req.applicationProperties || {}).map(([k, v]) => [types.wrap_string(k), typedProperty(k, v)]);
  const sections = [amqpMessage.properties(props).described()];
  if (appProps.length) sections.push(mapSection(0x74, appProps));
  sections.push(amqpMessage.data_section(body).described());
  const msg = enqueue(q.main, parseStored(writeSections(sections)));
  pump(q.main);
  return { sequenceNumber: msg.seq, messageId: msg.messageId };
}

function controlStats(name) {
  const found = resolveEntity(String(name || ''));
  if (!found || found.unsupported) throw new HTTPError(404, `unknown queue ${JSON.stringify(name)}`);
  const e = found.entity;
  const dlq = e.isDeadLetter ? null : e.queue.dlq;
  return Object.assign({
    active: e.active.length,
    locked: e.locked.size,
    deadLettered: dlq ? dlq.active.length + dlq.locked.size : 0,
    consumers: e.consumers.size,
  }, e.stats);
}

function expireLocks(q) {
  let n = 0;
  for (const e of [q.main, q.dlq]) {
    for (const [hex, msg] of [...e.locked]) {
      lockExpired(e, msg, hex);
      n++;
    }
  }
  return n;
}

async function route(method, url, body) {
  const key = `${method} ${url.pathname}`;
  switch (key) {
  case 'POST /send': return controlSend(body);
  case 'GET /stats': return controlStats(url.searchParams.get('queue'));
  case 'GET /deadletters': return allMessages(queueFor(url.searchParams.get('queue')).dlq).map(describe);
  case 'POST /expire-locks': return { expired: expireLocks(queueFor(body.queue)) };
  case 'POST /drop-connections': return { dropped: dropConnections() };
  case 'POST /pause':
    if (!paused) {
      paused = true;
      await new Promise(resolve => { amqpServer.close(() => resolve()); dropConnections(); });
    }
    return { paused: true };
  case 'POST /resume':
    if (paused) {
      await listenAmqp(amqpPort);
      paused = false;
    }
    return { paused: false };
  case 'POST /config': {
    const q = queueFor(body.queue);
    const lockMs = Number(body.lockDurationMs === undefined ? q.lockMs : body.lockDurationMs);
    const maxDelivery = Number(body.maxDeliveryCount === undefined ? q.maxDelivery : body.maxDeliveryCount);
    if (!Number.isInteger(lockMs) || lockMs <= 0) throw new HTTPError(400, 'lockDurationMs must be a positive integer');
    if (!Number.isInteger(maxDelivery) || maxDelivery <= 0) throw new HTTPError(400, 'maxDeliveryCount must be a positive integer');
    q.lockMs = lockMs;
    q.maxDelivery = maxDelivery;
    return { queue: q.name, lockDurationMs: q.lockMs, maxDeliveryCount: q.maxDelivery };
  }
  case 'GET /problems': return problems;
  case 'POST /problems/clear': return problems.splice(0, problems.length);
  default: throw new HTTPError(404, `no route ${key}`);
  }
}

const controlServer = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', c => chunks.push(c));
  req.on('end', async () => {
    let status = 200;
    let out;
    try {
      const text = Buffer.concat(chunks).toString();
      const body = text ? JSON.parse(text) : {};
      out = await route(req.method, new URL(req.url, 'http://control'), body);
    } catch (err) {
      status = err.status || 400;
      out = { error: err.message };
      log(`control ${req.method} ${req.url}: ${err.message}`);
    }
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(out));
  });
});

// ---------------------------------------------------------------------------------------------
// Start

let amqpPort;

(async () => {
  if (config.stateFile) loadState(config.stateFile);
  amqpPort = await listenAmqp(config.port);
  const controlPort = await new Promise((resolve, reject) => {
    controlServer.once('error', reject);
    controlServer.listen({ host: config.host, port: config.controlPort }, () => resolve(controlServer.address().port));
  });
  log(`listening amqp=${config.host}:${amqpPort} control=${config.host}:${controlPort} queues=${config.queues.join(',')} lockMs=${config.lockMs} maxDelivery=${config.maxDelivery}`);
  process.stdout.write(JSON.stringify({ amqp: amqpPort, control: controlPort }) + '\n');
  if (config.exitOnStdinEOF) {
    // The Go harness holds our stdin open; if its process dies, we go too instead of lingering.
    process.stdin.on('end', () => process.exit(0));
    process.stdin.resume();
  }
})().catch(err => {
  log('start failed:', err.message);
  process.exit(1);
});
