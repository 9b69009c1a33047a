import { useCallback, useEffect, useState } from 'react';
import { getModels, toApiError, type ApiError } from '../api/client';
import type { Limits, ModelInfo } from '../api/types';
import { DEFAULT_LIMITS, normalizeLimits } from '../lib/validation';

export const FALLBACK_MODELS: ModelInfo[] = [
  { name: 'fast', aliases: ['resnet'], task: 'classify', architecture: '', version: '', trained: true, metrics: {}, labels: [], description: 'Quicker, lighter classifier.' },
  { name: 'accurate', aliases: ['fusion'], task: 'classify', architecture: '', version: '', trained: true, metrics: {}, labels: [], description: 'Slower, more accurate classifier.' },
];

export interface ModelsState {
  models: ModelInfo[];
  defaultModel: string;
  limits: Limits;
  loaded: boolean;
  error: ApiError | null;
  reload: () => void;
}

export function useModels(): ModelsState {
  const [state, setState] = useState<Omit<ModelsState, 'reload'>>({
    models: FALLBACK_MODELS,
    defaultModel: '', // until /v1/models answers, submit without `model`: the gateway's default applies
    limits: DEFAULT_LIMITS,
    loaded: false,
    error: null,
  });
  const [attempt, setAttempt] = useState(0);
  const reload = useCallback(() => setAttempt((n) => n + 1), []);

  useEffect(() => {
    const ctrl = new AbortController();
    getModels({ signal: ctrl.signal }).then(
      (res) => {
        const classify = (res.models ?? []).filter((m) => m.task === 'classify');
        const models = classify.length ? classify : FALLBACK_MODELS;
        const def = models.some((m) => m.name === res.default) ? res.default : models[0].name;
        setState({ models, defaultModel: def, limits: normalizeLimits(res.limits), loaded: true, error: null });
      },
      (err) => {
        const e = toApiError(err);
        if (e.code === 'aborted') return;
        setState((s) => ({ ...s, loaded: false, error: e }));
      },
    );
    return () => ctrl.abort();
  }, [attempt]);

  return { ...state, reload };
}
