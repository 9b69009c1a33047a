import { reportUrl } from '../api/client';
import { shortId } from '../lib/format';

export interface InspectionEntry {
  id: string;
  photos: number;
  rejected: number;
}

/** Photos sent together form one inspection: its report covers all of them. */
export function InspectionBar({ inspection }: { inspection: InspectionEntry }) {
  return (
    <div className="card inspection-bar" data-testid="inspection" data-inspection-id={inspection.id}>
      <div>
        <strong>Inspection {shortId(inspection.id)}</strong>
        <span className="muted small">
          {' '}
          · {inspection.photos} photo{inspection.photos === 1 ? '' : 's'}
          {inspection.rejected ? ` · ${inspection.rejected} not usable` : ''}
        </span>
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
