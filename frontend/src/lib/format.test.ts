import { describe, expect, it } from 'vitest';
import { isValidJobId, jobHash, parseJobHash, pct } from './format';

describe('hash routes', () => {
  it('parses #/jobs/{id}', () => {
    expect(parseJobHash('#/jobs/3f2c9a')).toBe('3f2c9a');
    expect(parseJobHash('#/jobs/abc-DEF_1/')).toBe('abc-DEF_1');
    expect(parseJobHash(jobHash('xyz'))).toBe('xyz');
  });
  it('ignores other hashes and unsafe ids', () => {
    expect(parseJobHash('')).toBeNull();
    expect(parseJobHash('#/')).toBeNull();
    expect(parseJobHash('#/jobs/')).toBeNull();
    expect(parseJobHash('#/jobs/a%2Fb')).toBeNull();
    expect(parseJobHash('#/jobs/%E0%A4%A')).toBeNull();
    expect(isValidJobId('<script>')).toBe(false);
  });
  it('formats percentages', () => {
    expect(pct(0.8123)).toBe('81.2%');
    expect(pct(1, 0)).toBe('100%');
  });
});
