import { afterEach, describe, expect, it } from 'vitest';
import { API_KEY_STORAGE, clearApiKey, getApiKey, setApiKey } from './apiKey';

describe('apiKey', () => {
  afterEach(() => clearApiKey());

  it('keeps the key in sessionStorage and a session cookie, and clears both', () => {
    expect(getApiKey()).toBeNull();
    setApiKey('  dl_secret  ');
    expect(sessionStorage.getItem(API_KEY_STORAGE)).toBe('dl_secret');
    expect(getApiKey()).toBe('dl_secret');
    expect(document.cookie).toContain('damagelens_api_key=dl_secret');
    expect(localStorage.getItem(API_KEY_STORAGE)).toBeNull();
    clearApiKey();
    expect(getApiKey()).toBeNull();
    expect(document.cookie).not.toContain('dl_secret');
  });
});
