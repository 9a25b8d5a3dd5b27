// Network namespaces for the pipeline benchmark. Every packet the benchmark sends stays inside
// namespaces created here: a private loopback namespace (only `lo`, nothing else exists in it) and a
// bridge topology (one namespace per host joined by veth pairs to a bridge namespace). Addresses
// come from 198.18.0.0/15, the range RFC 2544 reserves for benchmarking, and are never routed out
// because none of these namespaces has a link to the outside.

import { execFileSync } from 'node:child_process';

export const NAMESPACE_PREFIX = 'scbench-';
const BRIDGE_SUBNET = '198.18.77';
const JUMBO_MTU = 9000;
const IP_TIMEOUT_MS = 10_000;

/** True when this process may create network namespaces (needs real root for `ip netns add`). */
export function canCreateNamespaces() {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

function ip(args) {
  return execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: IP_TIMEOUT_MS }).toString();
}

function ipQuiet(args) {
  try {
    ip(args);
    return true;
  } catch {
    return false;
  }
}

function inNamespace(namespace, args) {
  return ip(['netns', 'exec', namespace, 'ip', ...args]);
}

/** Lists namespaces that carry our prefix, e.g. left behind by a run that was killed with SIGKILL. */
export function listBenchNamespaces() {
  let text = '';
  try {
    text = ip(['netns', 'list']);
  } catch {
    return [];
  }
  return text
    .split('\n')
    .map((line) => line.trim().split(/\s+/)[0])
    .filter((name) => name && name.startsWith(NAMESPACE_PREFIX));
}

/** Deletes every namespace with our prefix; deleting a namespace also deletes the veths in it. */
export function deleteBenchNamespaces() {
  for (const name of listBenchNamespaces()) ipQuiet(['netns', 'del', name]);
}

const liveTopologies = new Set();
let exitHandlersInstalled = false;

// Teardown must also happen when the benchmark dies by an exception, so the handler is
// synchronous and idempotent. Signals are the caller's business: its handler should kill the
// children first, then call teardownAllTopologies() (or just exit, which runs this handler).
function installExitHandlers() {
  if (exitHandlersInstalled) return;
  exitHandlersInstalled = true;
  process.on('exit', teardownAllTopologies);
}

/** Deletes every namespace created by this module that is still up. */
export function teardownAllTopologies() {
  for (const topology of [...liveTopologies]) topology.teardown();
}

function track(topology) {
  installExitHandlers();
  liveTopologies.add(topology);
  const teardownOnce = topology.teardown;
  let done = false;
  topology.teardown = () => {
    if (done) return;
    done = true;
    liveTopologies.delete(topology);
    teardownOnce();
  };
  return topology;
}

// Multicast needs a route: without one the kernel answers ENETUNREACH (or, on the host, would
// pick the default route). A multicast route to the one link a namespace has keeps it there.
// The source address is explicit because 127.0.0.1 has host scope and would otherwise not be
// chosen for a link-scope route, leaving unbound senders with source 0.0.0.0.
function addMulticastRoute(namespace, device, sourceAddress) {
  inNamespace(namespace, ['route', 'add', '224.0.0.0/4', 'dev', device, 'src', sourceAddress]);
}

/**
 * A namespace holding only its own loopback device. All endpoints run in it and talk over `lo`
 * at 127.0.0.1, which is the same kernel path as the host loopback, but nothing can leave.
 */
export function createLoopbackNamespace(tag = 'lo') {
  const name = `${NAMESPACE_PREFIX}${tag}`;
  ipQuiet(['netns', 'del', name]);
  ip(['netns', 'add', name]);
  const topology = track({
    kind: 'loopback',
    namespaces: [name],
    teardown: () => ipQuiet(['netns', 'del', name]),
  });
  try {
    inNamespace(name, ['link', 'set', 'lo', 'up', 'multicast', 'on']);
    addMulticastRoute(name, 'lo', '127.0.0.1');
  } catch (error) {
    topology.teardown();
    throw error;
  }
  const endpoint = { namespace: name, device: 'lo', address: '127.0.0.1' };
  topology.sender = endpoint;
  topology.receivers = (count) => Array.from({ length: count }, () => endpoint);
  return topology;
}

/**
 * A bridge namespace with a bridge `br0`, a sender namespace and `receiverCount` receiver
 * namespaces, each joined to the bridge by a veth pair with a 9000-byte MTU. IGMP snooping is off
 * so the bridge floods multicast to every port: every receiver wants every packet anyway, and
 * snooping without a querier would make delivery depend on timers.
 */
export function createBridgeTopology(receiverCount) {
  const bridgeNs = `${NAMESPACE_PREFIX}br`;
  const hostNames = ['snd', ...Array.from({ length: receiverCount }, (_, index) => `rcv${index + 1}`)];
  const namespaces = [bridgeNs, ...hostNames.map((host) => `${NAMESPACE_PREFIX}${host}`)];
  for (const name of namespaces) ipQuiet(['netns', 'del', name]);
  const created = [];
  const topology = track({
    kind: 'bridge',
    namespaces,
    teardown: () => {
      for (const name of created.reverse()) ipQuiet(['netns', 'del', name]);
    },
  });
  try {
    for (const name of namespaces) {
      ip(['netns', 'add', name]);
      created.push(name);
      inNamespace(name, ['link', 'set', 'lo', 'up']);
    }
    inNamespace(bridgeNs, ['link', 'add', 'br0', 'type', 'bridge', 'mcast_snooping', '0']);
    inNamespace(bridgeNs, ['link', 'set', 'br0', 'mtu', String(JUMBO_MTU), 'up']);
    const endpoints = hostNames.map((host, index) => {
      const namespace = `${NAMESPACE_PREFIX}${host}`;
      const bridgeSide = `p-${host}`;
      const hostSide = 'veth0';
      // Create the pair inside the bridge namespace, then move one end: no device ever exists in
      // the host namespace, so nothing can be attached to a real network by accident.
      inNamespace(bridgeNs, ['link', 'add', bridgeSide, 'mtu', String(JUMBO_MTU), 'type', 'veth', 'peer', 'name', hostSide, 'mtu', String(JUMBO_MTU)]);
      inNamespace(bridgeNs, ['link', 'set', hostSide, 'netns', namespace]);
      inNamespace(bridgeNs, ['link', 'set', bridgeSide, 'master', 'br0', 'up']);
      const address = `${BRIDGE_SUBNET}.${index + 1}`;
      inNamespace(namespace, ['addr', 'add', `${address}/24`, 'dev', hostSide]);
      inNamespace(namespace, ['link', 'set', hostSide, 'up']);
      addMulticastRoute(namespace, hostSide, address);
      return { namespace, device: hostSide, address };
    });
    topology.sender = endpoints[0];
    const receiverEndpoints = endpoints.slice(1);
    topology.receivers = (count) => {
      if (count > receiverEndpoints.length) throw new RangeError(`receiver count ${count} exceeds the topology's ${receiverEndpoints.length}`);
      return receiverEndpoints.slice(0, count);
    };
  } catch (error) {
    topology.teardown();
    throw error;
  }
  return topology;
}

/** argv prefix that runs a command inside `namespace` (or directly when namespace is null). */
export function namespacePrefix(namespace) {
  return namespace ? ['ip', 'netns', 'exec', namespace] : [];
}
