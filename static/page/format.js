// Numbers as the page writes them.

/** Bytes: "3.2 MB", or "45 kB" below a megabyte. */
export const mb = (n) => n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${Math.max(1, Math.round(n / 1e3))} kB`;

/** "1 photo", "2 photos". */
export const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** A time left, rounded the way people say it. */
export const seconds = (s) => s < 1.5 ? 'about 1 s' : s < 90 ? `about ${Math.round(s)} s` : `about ${Math.round(s / 60)} min`;
