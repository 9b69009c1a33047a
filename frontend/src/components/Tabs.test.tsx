import { fireEvent, render, screen } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { Tabs } from './Tabs';

const tabs = [
  { id: 'a', label: 'Alpha', panel: <p>Panel A</p> },
  { id: 'b', label: 'Beta', panel: <p>Panel B</p> },
  { id: 'c', label: 'Gamma', panel: <p>Panel C</p> },
];

describe('Tabs', () => {
  it('wires tablist, tabs and panels with ARIA', () => {
    render(<Tabs label="Results" tabs={tabs} />);
    expect(screen.getByRole('tablist', { name: 'Results' })).toBeInTheDocument();
    const [a, b] = screen.getAllByRole('tab');
    expect(a).toHaveAttribute('aria-selected', 'true');
    expect(a).toHaveAttribute('tabindex', '0');
    expect(b).toHaveAttribute('tabindex', '-1');
    const panel = screen.getByRole('tabpanel');
    expect(panel).toHaveAttribute('aria-labelledby', a.id);
    expect(a).toHaveAttribute('aria-controls', panel.id);
    expect(panel).toHaveTextContent('Panel A');
  });

  it('moves with arrow keys, Home and End, wrapping around', () => {
    render(<Tabs label="Results" tabs={tabs} />);
    const [a, , c] = screen.getAllByRole('tab');
    a.focus();
    fireEvent.keyDown(a, { key: 'ArrowRight' });
    expect(screen.getByRole('tab', { name: 'Beta' })).toHaveAttribute('aria-selected', 'true');
    expect(screen.getByRole('tab', { name: 'Beta' })).toHaveFocus();
    expect(screen.getByRole('tabpanel')).toHaveTextContent('Panel B');
    fireEvent.keyDown(document.activeElement!, { key: 'End' });
    expect(c).toHaveAttribute('aria-selected', 'true');
    fireEvent.keyDown(c, { key: 'ArrowRight' });
    expect(a).toHaveAttribute('aria-selected', 'true');
    fireEvent.keyDown(a, { key: 'ArrowLeft' });
    expect(c).toHaveFocus();
    fireEvent.keyDown(c, { key: 'Home' });
    expect(a).toHaveFocus();
  });

  it('activates on click', () => {
    render(<Tabs label="Results" tabs={tabs} />);
    fireEvent.click(screen.getByRole('tab', { name: 'Gamma' }));
    expect(screen.getByRole('tabpanel')).toHaveTextContent('Panel C');
  });
});
