// Client-side checks that mirror the gateway's own rejections (same error codes).
import type { ErrorInfo, Limits } from '../api/types';

export const DEFAULT_LIMITS: Limits = {
  max_upload_bytes: 20 * 1024 * 1024,
  max_pixels: 40_000_000,
  accepted_types: ['image/jpeg', 'image/png', 'image/webp', 'image/bmp', 'image/tiff', 'image/gif'],
};

const EXTENSION_TYPES: Record<string, string> = {
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  jfif: 'image/jpeg',
  png: 'image/png',
  webp: 'image/webp',
  bmp: 'image/bmp',
  tif: 'image/tiff',
  tiff: 'image/tiff',
  gif: 'image/gif',
};

/** The browser's MIME type, or one guessed from the extension when the browser gives none. */
export function effectiveType(file: { name: string; type: string }): string {
  const t = file.type.toLowerCase();
  if (t) return t === 'image/jpg' || t === 'image/pjpeg' ? 'image/jpeg' : t === 'image/x-ms-bmp' ? 'image/bmp' : t;
  const ext = file.name.split('.').pop()?.toLowerCase() ?? '';
  return EXTENSION_TYPES[ext] ?? '';
}

export function formatBytes(n: number): string {
  if (n >= 1024 * 1024) return `${(n / (1024 * 1024)).toFixed(n % (1024 * 1024) === 0 ? 0 : 1)} MB`;
  if (n >= 1024) return `${Math.round(n / 1024)} KB`;
  return `${n} B`;
}

export function typeNames(types: string[]): string {
  return types.map((t) => t.replace(/^image\//, '').toUpperCase()).join(', ');
}

/** Returns null when the file may be uploaded, else the error the gateway would give. */
export function validateFile(file: { name: string; type: string; size: number }, limits: Limits = DEFAULT_LIMITS): ErrorInfo | null {
  if (file.size === 0) {
    return { code: 'empty_upload', message: `"${file.name}" is empty.` };
  }
  const type = effectiveType(file);
  if (!limits.accepted_types.includes(type)) {
    return {
      code: 'unsupported_media_type',
      message: `"${file.name}" is not a supported image (${type || 'unknown type'}). Accepted: ${typeNames(limits.accepted_types)}.`,
    };
  }
  if (file.size > limits.max_upload_bytes) {
    return {
      code: 'upload_too_large',
      message: `"${file.name}" is ${formatBytes(file.size)}; the limit is ${formatBytes(limits.max_upload_bytes)}.`,
    };
  }
  return null;
}

/** Pixel-count check once the browser has decoded the image (TIFF usually can't be: the server checks then). */
export function validatePixels(name: string, width: number, height: number, limits: Limits = DEFAULT_LIMITS): ErrorInfo | null {
  if (width * height > limits.max_pixels) {
    return {
      code: 'image_too_large',
      message: `"${name}" is ${width}×${height} (${(width * height / 1e6).toFixed(1)} Mpx); the limit is ${(limits.max_pixels / 1e6).toFixed(0)} Mpx.`,
    };
  }
  return null;
}

/** Merge whatever the server sent with the defaults so a partial `limits` never disables checks. */
export function normalizeLimits(l: Partial<Limits> | undefined | null): Limits {
  return {
    max_upload_bytes: l?.max_upload_bytes && l.max_upload_bytes > 0 ? l.max_upload_bytes : DEFAULT_LIMITS.max_upload_bytes,
    max_pixels: l?.max_pixels && l.max_pixels > 0 ? l.max_pixels : DEFAULT_LIMITS.max_pixels,
    accepted_types: l?.accepted_types?.length ? l.accepted_types.map((t) => t.toLowerCase()) : DEFAULT_LIMITS.accepted_types,
  };
}
