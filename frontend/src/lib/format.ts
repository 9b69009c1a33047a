export const pct = (v: number, digits = 1): string => `${(v * 100).toFixed(digits)}%`;

export const shortId = (id: string): string => (id.length > 10 ? `${id.slice(0, 8)}…` : id);

/** Job ids are opaque but URL-safe; reject anything else typed into the "open job" box. */
export const isValidJobId = (id: string): boolean => /^[A-Za-z0-9_-]{1,128}$/.test(id);

export function parseJobHash(hash: string): string | null {
  const m = /^#\/jobs\/([^/?#]+)\/?$/.exec(hash);
  if (!m) return null;
  let id: string;
  try {
    id = decodeURIComponent(m[1]);
  } catch {
    return null;
  }
  return isValidJobId(id) ? id : null;
}

export const jobHash = (id: string): string => `#/jobs/${encodeURIComponent(id)}`;

const METRIC_NAMES: Record<string, string> = {
  cv_accuracy: 'CV accuracy',
  cv_macro_f1: 'CV macro-F1',
  accuracy: 'Accuracy',
  macro_f1: 'Macro-F1',
};
export const metricName = (k: string): string => METRIC_NAMES[k] ?? k.replace(/_/g, ' ');
export const metricValue = (v: number): string => (v >= 0 && v <= 1 ? pct(v) : String(Number(v.toFixed(3))));
