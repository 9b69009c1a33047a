import { useEffect, useState } from 'react';
import { ApiError, getInspection, reportUrl } from '../api/client';
import { DAMAGE_TYPES, isTerminal, type InspectionSummary } from '../api/types';
import { shortId } from '../lib/format';

export interface InspectionEntry {
  id: string;
  photos: number;
  rejected: number;
}

const POLL_MS = 3000;

/** Re-read the inspection until it is done: its vehicle summary grows as the photos finish. */
export function useInspectionSummary(id: string, pollMs = POLL_MS): InspectionSummary | null {
  const [summary, setSummary] = useState<InspectionSummary | null>(null);
  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const poll = async () => {
      try {
        const doc = await getInspection(id);
        if (stopped) return;
        setSummary(doc.summary);
        if (isTerminal(doc.status)) return;
      } catch (err) {
        if (stopped || (err instanceof ApiError && err.status === 404)) return; // gone: nothing more to show
      }
      timer = setTimeout(poll, pollMs);
    };
    void poll();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [id, pollMs]);
  return summary;
}

/** The vehicle's worst severity and its typed damage counts, once the assess stage ran on a photo. */
export function VehicleSeverity({ summary }: { summary: InspectionSummary | null }) {
  if (!summary?.severity || !summary.damage_counts) return null;
  const { severity, damage_counts: counts } = summary;
  return (
    <div className="small" data-testid="vehicle-severity">
      Severity <strong className="severity-inline">{severity.label}</strong> ({Math.round(severity.confidence * 100)}%, photo{' '}
      {severity.photo_index + 1}: {severity.filename}) · {DAMAGE_TYPES.map((t) => `${counts[t] ?? 0} ${t}`).join(' · ')}
    </div>
  );
}

/** Photos sent together form one inspection: its report covers all of them. */
export function InspectionBar({ inspection, pollMs }: { inspection: InspectionEntry; pollMs?: number }) {
  const summary = useInspectionSummary(inspection.id, pollMs);
  return (
    <div className="card inspection-bar" data-testid="inspection" data-inspection-id={inspection.id}>
      <div>
        <strong>Inspection {shortId(inspection.id)}</strong>
        <span className="muted small">
          {' '}
          · {inspection.photos} photo{inspection.photos === 1 ? '' : 's'}
          {inspection.rejected ? ` · ${inspection.rejected} not usable` : ''}
        </span>
        <VehicleSeverity summary={summary} />
      </div>
      <div className="row">
        <a className="btn btn-primary" href={reportUrl(inspection.id)} target="_blank" rel="noreferrer" download={`inspection-${inspection.id}.html`}>
          Download report
        </a>
        <a className="btn btn-ghost" href={reportUrl(inspection.id, 'pdf')} download={`inspection-${inspection.id}.pdf`}>
          PDF
        </a>
      </div>
    </div>
  );
}
