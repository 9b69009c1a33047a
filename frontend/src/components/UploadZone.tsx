import { useRef, useState, type DragEvent } from 'react';
import type { Limits } from '../api/types';
import { formatBytes, typeNames } from '../lib/validation';

interface Props {
  limits: Limits;
  onFiles: (files: File[]) => void;
}

export function UploadZone({ limits, onFiles }: Props) {
  const input = useRef<HTMLInputElement>(null);
  const [over, setOver] = useState(false);

  const onDrop = (e: DragEvent) => {
    e.preventDefault();
    e.stopPropagation(); // the page-wide drop handler would add the same files a second time
    setOver(false);
    const files = Array.from(e.dataTransfer?.files ?? []);
    if (files.length) onFiles(files);
  };

  return (
    <div
      className={`dropzone${over ? ' over' : ''}`}
      data-testid="dropzone"
      onDragOver={(e) => {
        e.preventDefault();
        if (e.dataTransfer) e.dataTransfer.dropEffect = 'copy';
        setOver(true);
      }}
      onDragLeave={() => setOver(false)}
      onDrop={onDrop}
    >
      <div className="dropzone-icon" aria-hidden="true">
        ⇪
      </div>
      <p className="dropzone-title">Drop car photos here</p>
      <p className="muted small">
        or paste with Ctrl+V · {typeNames(limits.accepted_types)} · up to {formatBytes(limits.max_upload_bytes)} each
      </p>
      <button type="button" className="btn btn-primary" onClick={() => input.current?.click()}>
        Choose photos…
      </button>
      <input
        ref={input}
        id="file-input"
        data-testid="file-input"
        className="sr-only"
        type="file"
        multiple
        accept={limits.accepted_types.join(',')}
        aria-label="Choose photos to analyse"
        tabIndex={-1}
        onChange={(e) => {
          const files = Array.from(e.target.files ?? []);
          e.target.value = '';
          if (files.length) onFiles(files);
        }}
      />
    </div>
  );
}
