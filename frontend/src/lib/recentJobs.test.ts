import { describe, expect, it } from 'vitest';
import { loadRecent, MAX_RECENT, removeRecent, saveRecent, STORAGE_KEY, upsertRecent, type RecentJob } from './recentJobs';

const job = (id: string, extra: Partial<RecentJob> = {}): RecentJob => ({ id, filename: `${id}.jpg`, model: 'fast', createdAt: '2026-01-01T00:00:00Z', ...extra });

describe('recent jobs storage', () => {
  it('round-trips through localStorage', () => {
    saveRecent([job('a'), job('b')]);
    expect(loadRecent().map((j) => j.id)).toEqual(['a', 'b']);
    expect(JSON.parse(localStorage.getItem(STORAGE_KEY)!)).toHaveLength(2);
  });

  it('survives corrupt or foreign data', () => {
    localStorage.setItem(STORAGE_KEY, '{not json');
    expect(loadRecent()).toEqual([]);
    localStorage.setItem(STORAGE_KEY, JSON.stringify({ id: 'x' }));
    expect(loadRecent()).toEqual([]);
    localStorage.setItem(STORAGE_KEY, JSON.stringify([job('ok'), null, 5, { foo: 1 }]));
    expect(loadRecent().map((j) => j.id)).toEqual(['ok']);
  });

  it('inserts new jobs at the front and caps the list', () => {
    let list: RecentJob[] = [];
    for (let i = 0; i < MAX_RECENT + 5; i++) list = upsertRecent(list, job(`j${i}`));
    expect(list).toHaveLength(MAX_RECENT);
    expect(list[0].id).toBe(`j${MAX_RECENT + 4}`);
  });

  it('merges updates in place without losing fields', () => {
    const list = [job('a'), job('b')];
    const next = upsertRecent(list, { id: 'b', status: 'succeeded', label: 'Rear Crushed', filename: undefined }, false);
    expect(next.map((j) => j.id)).toEqual(['a', 'b']);
    expect(next[1]).toMatchObject({ filename: 'b.jpg', status: 'succeeded', label: 'Rear Crushed' });
    expect(upsertRecent(list, { id: 'b' }, true)[0].id).toBe('b');
  });

  it('removes by id', () => {
    expect(removeRecent([job('a'), job('b')], 'a').map((j) => j.id)).toEqual(['b']);
  });
});
