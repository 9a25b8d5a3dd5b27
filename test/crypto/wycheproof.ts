// Loads the Wycheproof AEAD vectors (test/vectors/wycheproof, Apache-2.0, see its LICENSE) and
// maps them onto sealcast suite names.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { SuiteName } from '../../dist/crypto/backend.js';
import { fromHex } from './slab.js';

const VECTOR_DIRECTORY = fileURLToPath(new URL('../vectors/wycheproof/', import.meta.url));

export interface AeadVector {
  file: string;
  tcId: number;
  suite: SuiteName;
  ivBits: number;
  comment: string;
  flags: string[];
  key: Uint8Array;
  iv: Uint8Array;
  aad: Uint8Array;
  msg: Uint8Array;
  ct: Uint8Array;
  tag: Uint8Array;
  valid: boolean;
}

interface WycheproofFile {
  algorithm: string;
  numberOfTests: number;
  testGroups: Array<{
    ivSize: number;
    keySize: number;
    tagSize: number;
    tests: Array<{
      tcId: number;
      comment: string;
      flags: string[];
      key: string;
      iv: string;
      aad: string;
      msg: string;
      ct: string;
      tag: string;
      result: 'valid' | 'invalid' | 'acceptable';
    }>;
  }>;
}

function suiteFor(file: string, keyBits: number): SuiteName {
  if (file.startsWith('chacha20_poly1305')) return 'chacha20-poly1305';
  if (keyBits === 128) return 'aes-128-gcm';
  if (keyBits === 192) return 'aes-192-gcm';
  if (keyBits === 256) return 'aes-256-gcm';
  throw new RangeError(`${file}: no suite for a ${keyBits}-bit AES key`);
}

/**
 * Every vector of the file with a 128-bit tag (sealcast's only tag size). Vectors with other
 * IV sizes are included, marked by `ivBits`; callers decide what to do with them.
 */
export function loadVectors(file: 'aes_gcm_test.json' | 'chacha20_poly1305_test.json'): { vectors: AeadVector[]; declaredCount: number } {
  const parsed = JSON.parse(readFileSync(VECTOR_DIRECTORY + file, 'utf8')) as WycheproofFile;
  const vectors: AeadVector[] = [];
  for (const group of parsed.testGroups) {
    if (group.tagSize !== 128) continue;
    for (const test of group.tests) {
      if (test.result === 'acceptable') {
        throw new Error(`${file} tcId ${test.tcId}: "acceptable" vectors are not expected in AEAD files`);
      }
      vectors.push({
        file,
        tcId: test.tcId,
        suite: suiteFor(file, group.keySize),
        ivBits: group.ivSize,
        comment: test.comment,
        flags: test.flags,
        key: fromHex(test.key),
        iv: fromHex(test.iv),
        aad: fromHex(test.aad),
        msg: fromHex(test.msg),
        ct: fromHex(test.ct),
        tag: fromHex(test.tag),
        valid: test.result === 'valid',
      });
    }
  }
  return { vectors, declaredCount: parsed.numberOfTests };
}

export function describeVector(vector: AeadVector): string {
  const flags = vector.flags.length > 0 ? ` [${vector.flags.join(',')}]` : '';
  return `${vector.file} tcId ${vector.tcId} (${vector.suite}, ${vector.valid ? 'valid' : 'invalid'})${flags}${vector.comment ? ' ' + vector.comment : ''}`;
}
