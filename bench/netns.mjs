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

/**
 * Makes `endpoint`'s device cut UDP GSO and TCP TSO sends into single datagrams and segments
 * before they leave, as a real NIC's wire carries them. A veth otherwise passes a GSO send of up to
 * 64 datagrams through the bridge as one frame and leaves the cutting to each receiver's stack, so
 * a loss rule would drop whole runs of datagrams at once and the bridge would flood one frame
 * where a LAN carries 64.
 */
export function segmentAtSender(endpoint) {
  if (!endpoint.namespace) throw new RangeError('segmenting at the sender needs the sender in a namespace of its own (the bridge path)');
  inNamespace(endpoint.namespace, ['link', 'set', 'dev', endpoint.device, 'gso_max_segs', '1']);
}

// ---------------------------------------------------------------------------------------------
// Random loss on a receiver's link. This kernel has no netem, so loss is an nftables rule on the
// ingress hook of the receiver's own veth, in the receiver's namespace: every frame that reaches
// that receiver (multicast data, unicast control and ARP alike, for every tool the same) is
// dropped with the given probability, independently per receiver. The table lives in the
// namespace, so deleting the namespace (teardown, exit handler, the next run's clean-up) also
// deletes the rule: nothing is ever installed in the host namespace.

const LOSS_TABLE = 'scbench_loss';
// Probability resolution: 1 in 100 000, i.e. 0.001 %.
const LOSS_MODULUS = 100_000;
const NFT_TIMEOUT_MS = 10_000;

function nft(namespace, args, input) {
  return execFileSync('ip', ['netns', 'exec', namespace, 'nft', ...args], {
    input,
    stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    timeout: NFT_TIMEOUT_MS,
  }).toString();
}

/** Drops `percent` % of the frames arriving on `endpoint.device` in `endpoint.namespace`. */
export function addIngressLoss(endpoint, percent) {
  if (!endpoint.namespace) throw new RangeError('loss needs a receiver in a namespace of its own (the bridge path)');
  if (!/^[A-Za-z0-9_.-]+$/.test(endpoint.device)) throw new RangeError(`unexpected device name "${endpoint.device}"`);
  const threshold = Math.round((percent / 100) * LOSS_MODULUS);
  removeIngressLoss(endpoint);
  // The first rule counts every frame, the second the dropped ones, so the loss a run actually
  // got can be read back (readIngressLoss).
  nft(endpoint.namespace, ['-f', '-'], `table netdev ${LOSS_TABLE} {
  chain ingress {
    type filter hook ingress device "${endpoint.device}" priority 0; policy accept;
    counter
    numgen random mod ${LOSS_MODULUS} < ${threshold} counter drop
  }
}
`);
}

/** Removes the loss rule from `endpoint`'s namespace; true when there was one. */
export function removeIngressLoss(endpoint) {
  if (!endpoint.namespace) return false;
  try {
    nft(endpoint.namespace, ['delete', 'table', 'netdev', LOSS_TABLE]);
    return true;
  } catch {
    return false;
  }
}

/** Frames seen and dropped so far by `endpoint`'s loss rule, or null when it has none. */
export function readIngressLoss(endpoint) {
  if (!endpoint.namespace) return null;
  try {
    const listing = JSON.parse(nft(endpoint.namespace, ['-j', 'list', 'table', 'netdev', LOSS_TABLE]));
    const counters = listing.nftables
      .filter((item) => item.rule)
      .map((item) => item.rule.expr.find((expression) => expression.counter)?.counter)
      .filter(Boolean);
    if (counters.length < 2) return null;
    return { frames: counters[0].packets, dropped: counters[1].packets };
  } catch {
    return null;
  }
}
