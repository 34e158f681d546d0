/** A hand-written SVG chart of the training history: loss and accuracy per epoch, side by side. */
import type { EpochMetrics } from './checkpoint.js';
import { lineChart, type Series } from '../draw/svg.js';

/** SVG text of the loss and accuracy curves; `epochs` fixes the x-axis length (default: the history's). */
export function trainingChart(history: readonly EpochMetrics[], options: { title?: string; epochs?: number } = {}): string {
  const epochs = options.epochs ?? history.length;
  const pick = (f: (m: EpochMetrics) => number | undefined): [number, number][] =>
    history.flatMap((m) => (f(m) === undefined ? [] : [[m.epoch, f(m)!] as [number, number]]));
  const loss: Series[] = [
    { name: 'train loss', points: pick((m) => m.train_loss) },
    { name: 'test loss', points: pick((m) => m.test_loss) },
  ].filter((s) => s.points.length > 0);
  const acc: Series[] = [
    { name: 'train acc', points: pick((m) => (m.train_acc === undefined ? undefined : m.train_acc * 100)) },
    { name: 'test acc', points: pick((m) => (m.test_acc === undefined ? undefined : m.test_acc * 100)) },
    { name: 'test acc (EMA)', points: pick((m) => (m.test_acc_ema === undefined ? undefined : m.test_acc_ema * 100)) },
  ].filter((s) => s.points.length > 0);
  const xRange: [number, number] = [1, Math.max(2, epochs)];
  return lineChart([
    { title: 'loss', xLabel: 'epoch', yLabel: 'loss', series: loss, xRange, integerX: true },
    { title: 'accuracy (%)', xLabel: 'epoch', yLabel: 'accuracy (%)', series: acc, xRange, integerX: true },
  ], options.title ? { title: options.title } : {});
}
