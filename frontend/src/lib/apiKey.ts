// The API key for gateways that require one (DAMAGELENS_AUTH=on), kept for this browser session
// only. It is mirrored in a session cookie because <img> and EventSource cannot send headers;
// the gateway honours that cookie for reads only.
export const API_KEY_STORAGE = 'damagelens.apiKey';
export const API_KEY_COOKIE = 'damagelens_api_key';

export function getApiKey(): string | null {
  try {
    return sessionStorage.getItem(API_KEY_STORAGE);
  } catch {
    return null;
  }
}

export function setApiKey(key: string): void {
  const value = key.trim();
  sessionStorage.setItem(API_KEY_STORAGE, value);
  document.cookie = `${API_KEY_COOKIE}=${encodeURIComponent(value)}; path=/; SameSite=Strict`;
}

export function clearApiKey(): void {
  sessionStorage.removeItem(API_KEY_STORAGE);
  document.cookie = `${API_KEY_COOKIE}=; path=/; max-age=0; SameSite=Strict`;
}
