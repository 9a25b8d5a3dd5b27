// Command-line parsing shared by the helper processes the end-to-end tests start (attacker,
// relay): `--name value` pairs and bare `--flag`s, and ADDR:PORT groups.

export function parseArgs(list) {
  const parsed = {};
  for (let index = 0; index < list.length; index++) {
    const name = list[index].replace(/^--/, '');
    const next = list[index + 1];
    if (next === undefined || next.startsWith('--')) parsed[name] = true;
    else {
      parsed[name] = next;
      index++;
    }
  }
  return parsed;
}

export function splitGroup(text) {
  const index = text.lastIndexOf(':');
  return [text.slice(0, index), Number(text.slice(index + 1))];
}
