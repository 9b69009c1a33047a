// Recent jobs, kept in localStorage so they survive reloads.
import type { JobStatus } from '../api/types';

export const STORAGE_KEY = 'damagelens.recentJobs.v1';
export const MAX_RECENT = 20;

export interface RecentJob {
  id: string;
  filename: string;
  model: string;
  createdAt: string;
  status?: JobStatus;
  label?: string;
}

function storage(): Storage | null {
  try {
    return typeof localStorage === 'undefined' ? null : localStorage;
  } catch {
    return null; // e.g. blocked by privacy settings
  }
}

export function loadRecent(): RecentJob[] {
  const raw = storage()?.getItem(STORAGE_KEY);
  if (!raw) return [];
  try {
    const data: unknown = JSON.parse(raw);
    if (!Array.isArray(data)) return [];
    return data
      .filter((j): j is RecentJob => !!j && typeof j === 'object' && typeof (j as RecentJob).id === 'string')
      .slice(0, MAX_RECENT);
  } catch {
    return [];
  }
}

export function saveRecent(jobs: RecentJob[]): void {
  try {
    storage()?.setItem(STORAGE_KEY, JSON.stringify(jobs.slice(0, MAX_RECENT)));
  } catch {
    /* quota or disabled storage: recent jobs are a convenience only */
  }
}

/** Insert or update (merging fields) a job, moving it to the front when `toFront`. Returns the new list. */
export function upsertRecent(jobs: RecentJob[], entry: Partial<RecentJob> & { id: string }, toFront = true): RecentJob[] {
  const idx = jobs.findIndex((j) => j.id === entry.id);
  const prev = idx >= 0 ? jobs[idx] : undefined;
  const merged: RecentJob = {
    filename: '',
    model: '',
    createdAt: new Date().toISOString(),
    ...prev,
    ...Object.fromEntries(Object.entries(entry).filter(([, v]) => v !== undefined)),
  } as RecentJob;
  const rest = jobs.filter((j) => j.id !== entry.id);
  if (toFront || idx < 0) return [merged, ...rest].slice(0, MAX_RECENT);
  const out = [...jobs];
  out[idx] = merged;
  return out;
}

export function removeRecent(jobs: RecentJob[], id: string): RecentJob[] {
  return jobs.filter((j) => j.id !== id);
}
