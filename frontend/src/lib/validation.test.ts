import { describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS, effectiveType, normalizeLimits, validateFile, validatePixels } from './validation';

const file = (name: string, type: string, size: number) => ({ name, type, size });

describe('validateFile', () => {
  it('accepts every default type within the size limit', () => {
    for (const t of DEFAULT_LIMITS.accepted_types) expect(validateFile(file('a', t, 1000))).toBeNull();
  });

  it('rejects empty files like the server (empty_upload)', () => {
    expect(validateFile(file('a.jpg', 'image/jpeg', 0))?.code).toBe('empty_upload');
  });

  it('rejects non-images (unsupported_media_type) and lists accepted types', () => {
    const e = validateFile(file('notes.pdf', 'application/pdf', 10));
    expect(e?.code).toBe('unsupported_media_type');
    expect(e?.message).toContain('notes.pdf');
    expect(e?.message).toContain('JPEG, PNG, WEBP, BMP, TIFF, GIF');
  });

  it('rejects files over the byte limit (upload_too_large)', () => {
    const e = validateFile(file('big.jpg', 'image/jpeg', 20 * 1024 * 1024 + 1));
    expect(e?.code).toBe('upload_too_large');
    expect(e?.message).toContain('20 MB');
    expect(validateFile(file('ok.jpg', 'image/jpeg', 20 * 1024 * 1024))).toBeNull();
  });

  it('uses the limits from /v1/models', () => {
    const limits = normalizeLimits({ max_upload_bytes: 1024, accepted_types: ['image/png'] });
    expect(validateFile(file('a.jpg', 'image/jpeg', 10), limits)?.code).toBe('unsupported_media_type');
    expect(validateFile(file('a.png', 'image/png', 2048), limits)?.message).toContain('1 KB');
    expect(validateFile(file('a.png', 'image/png', 1000), limits)).toBeNull();
  });

  it('guesses the type from the extension when the browser gives none', () => {
    expect(effectiveType(file('scan.TIF', '', 1))).toBe('image/tiff');
    expect(effectiveType(file('x.jpg', 'image/jpg', 1))).toBe('image/jpeg');
    expect(validateFile(file('photo.webp', '', 5))).toBeNull();
    expect(validateFile(file('mystery', '', 5))?.code).toBe('unsupported_media_type');
  });

  it('checks the pixel limit (image_too_large)', () => {
    expect(validatePixels('a.jpg', 8000, 6000)?.code).toBe('image_too_large');
    expect(validatePixels('a.jpg', 4000, 3000)).toBeNull();
  });

  it('falls back to defaults for missing or partial limits', () => {
    expect(normalizeLimits(undefined)).toEqual(DEFAULT_LIMITS);
    expect(normalizeLimits({ max_pixels: 5 }).max_upload_bytes).toBe(DEFAULT_LIMITS.max_upload_bytes);
  });
});
