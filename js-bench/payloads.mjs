// The payloads of the Node benchmarks: 10 string fields.

/** 10 string fields of `fieldLen` copies of one letter; `salt` picks the letters. */
function payload(fieldLen, salt) {
  const o = {};
  for (let i = 0; i < 10; i++) {
    o[`field${i}`] = String.fromCharCode(97 + ((i + salt) % 26)).repeat(fieldLen);
  }
  return o;
}

/** 10 fields of 1,000 characters of prose with a line break every 80 or so (`\n`, escaped in JSON). */
function lines(salt) {
  const words = ['context', 'state', 'version', 'tab', 'session', 'write', 'read', 'cache'];
  const o = {};
  for (let i = 0; i < 10; i++) {
    let s = '';
    let line = 0;
    for (let w = salt + i; s.length < 1_000; w++) {
      const word = words[w % words.length];
      const wrap = line + word.length > 80;
      s += `${wrap ? '\n' : s === '' ? '' : ' '}${word}`;
      line = wrap ? word.length : line + word.length + 1;
    }
    o[`field${i}`] = s.slice(0, 1_000);
  }
  return o;
}

/** 10 fields of 100 doubles each, as measurements have them (15 to 17 significant digits). */
function doubles(salt) {
  const o = {};
  let x = salt + 1;
  for (let i = 0; i < 10; i++) {
    o[`field${i}`] = Array.from({ length: 100 }, () => {
      x = (x * 48271) % 2147483647;
      return (x / 2147483647) * 10 ** ((x % 7) - 2);
    });
  }
  return o;
}

/** 10 fields of 8 characters, of 1,000 (10 KB), of 1,000 with line breaks, and of 100 doubles. */
export const PAYLOADS = {
  small: { name: '10 fields', make: (salt) => payload(8, salt) },
  large: { name: '10 KB', make: (salt) => payload(1_000, salt) },
  lines: { name: '10 KB of lines', make: lines },
  doubles: { name: '1,000 doubles', make: doubles },
};
