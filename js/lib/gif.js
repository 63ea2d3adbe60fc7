// The comment text of a GIF (the comment extension, 0x21 0xFE), where Save Animation stores the workflow as JSON.
// Pure: bytes in, string (or null) out. Walks the block structure; never reads past the end.

export function gifComment(bytes) {
  const b = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const ascii = String.fromCharCode(...b.subarray(0, 6));
  if (ascii !== "GIF87a" && ascii !== "GIF89a") return null;
  let i = 13;  // header (6) + logical screen descriptor (7)
  if (b.length < i) return null;
  const packed = b[10];
  if (packed & 0x80) i += 3 * (1 << ((packed & 0x07) + 1));  // global colour table
  const subBlocks = (start) => {  // -> [data, next index]
    const parts = [];
    let j = start;
    while (j < b.length && b[j] !== 0) {
      parts.push(b.subarray(j + 1, Math.min(j + 1 + b[j], b.length)));
      j += 1 + b[j];
    }
    return [parts, j + 1];
  };
  while (i < b.length) {
    const block = b[i];
    if (block === 0x3b) return null;  // trailer
    if (block === 0x21) {
      const [parts, next] = subBlocks(i + 2);
      if (b[i + 1] === 0xfe) return new TextDecoder().decode(concat(parts));
      i = next;
    } else if (block === 0x2c) {  // image descriptor (10) [+ local colour table] + LZW minimum code size + data
      const local = b[i + 9];
      i += 10 + (local & 0x80 ? 3 * (1 << ((local & 0x07) + 1)) : 0) + 1;
      i = subBlocks(i)[1];
    } else {
      return null;  // not a block a GIF may hold here: a damaged file
    }
  }
  return null;
}

function concat(parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let k = 0;
  for (const p of parts) {
    out.set(p, k);
    k += p.length;
  }
  return out;
}

/** The workflow a Save Animation GIF carries, or null. */
export function gifWorkflow(bytes) {
  const text = gifComment(bytes);
  if (!text) return null;
  try {
    const meta = JSON.parse(text);
    return meta && typeof meta.workflow === "object" ? meta.workflow : null;
  } catch {
    return null;
  }
}
