import { fireEvent, render, screen } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { GradCamView } from './GradCamView';

const explanation = {
  method: 'gradcam',
  target_label: 'Front Crushed',
  overlay_url: '/v1/jobs/j/artifacts/gradcam_overlay.jpg',
  heatmap_url: '/v1/jobs/j/artifacts/gradcam_heatmap.png',
  model: 'fast',
  model_version: '7.0.0',
};

describe('GradCamView', () => {
  it('stacks the overlay over the original, with an opacity slider', () => {
    render(<GradCamView inputUrl="/v1/jobs/j/artifacts/input" explanation={explanation} />);
    expect(screen.getByTestId('gradcam-overlay')).toHaveClass('overlay');
    expect(screen.getByLabelText('Overlay opacity')).toBeInTheDocument();
  });

  it('shows the overlay on its own when the browser cannot display the original (e.g. TIFF)', () => {
    render(<GradCamView inputUrl="/v1/jobs/j/artifacts/input" explanation={explanation} />);
    fireEvent.error(screen.getByAltText('Original photo'));
    const overlay = screen.getByTestId('gradcam-overlay');
    expect(overlay).not.toHaveClass('overlay');
    expect(overlay).toHaveAttribute('alt', 'Grad-CAM overlay for Front Crushed');
    expect(screen.queryByLabelText('Overlay opacity')).toBeNull();
    expect(screen.getByRole('status')).toHaveTextContent('shown as rendered by the server');
  });
});
