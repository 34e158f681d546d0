/** `swiftformer <command>` (run by main.ts): one small module per command; errors are one line and exit 1 (usage errors 2). */
import '../node/platform.js';
import { SwiftFormerError } from '../core/errors.js';
import { fsReason } from '../node/files.js';
import { cliMessage, packageVersion } from './args.js';
import { bench, usage as benchUsage } from './bench.js';
import { classify, usage as classifyUsage } from './classify.js';
import { evalCommand, usage as evalUsage } from './eval.js';
import { exportCommand, usage as exportUsage } from './export.js';
import { info, usage as infoUsage } from './info.js';
import { scoreCommand, usage as scoreUsage } from './score.js';
import { segmentCommand, usage as segmentUsage } from './segment.js';
import { detectCommand, usage as detectUsage } from './detect.js';
import { serveCommand, usage as serveUsage } from './serve.js';
import { trainCommand, usage as trainUsage } from './train.js';

interface Command { run: (argv: string[]) => Promise<void>; summary: string; usage: string }

const commands: Record<string, Command> = {
  info: { run: info, usage: infoUsage, summary: 'parameters, MACs and stage shapes of a model' },
  export: { run: exportCommand, usage: exportUsage, summary: 'write a model (with weights) as ONNX' },
  train: { run: trainCommand, usage: trainUsage, summary: 'train or fine-tune a classifier (Fashion-MNIST, IDX files, image folders) or a Semantic FPN segmenter' },
  classify: { run: classify, usage: classifyUsage, summary: 'top classes of image files' },
  segment: { run: segmentCommand, usage: segmentUsage, summary: 'semantic segmentation masks and overlays of image files (Semantic FPN)' },
  detect: { run: detectCommand, usage: detectUsage, summary: 'objects in image files: boxes, labels, scores and masks (Mask R-CNN)' },
  eval: { run: evalCommand, usage: evalUsage, summary: 'top-1/top-5 accuracy on an ImageFolder, mIoU on a segmentation dataset, or COCO box/mask AP of a detector' },
  bench: { run: bench, usage: benchUsage, summary: 'latency and throughput, side by side with another export' },
  score: { run: scoreCommand, usage: scoreUsage, summary: 'mIoU (mmsegmentation) or COCO AP (pycocotools) of prediction files' },
  serve: { run: serveCommand, usage: serveUsage, summary: 'an HTTP inference server (Open Inference Protocol / KServe v2, Triton clients)' },
};

const usage = `Usage: swiftformer <command> [options]

Commands:
${Object.entries(commands).map(([name, c]) => `  ${name.padEnd(10)}${c.summary}`).join('\n')}

Run 'swiftformer <command> --help' for a command's options; 'swiftformer --version' for the version.`;

/** A failed write to stdout (a full disk, a closed pipe) rather than an error of the command. */
function isOutputError(err: unknown): err is NodeJS.ErrnoException {
  const e = err as NodeJS.ErrnoException | undefined;
  return typeof e?.code === 'string' && e.syscall === 'write' && e.path === undefined;
}

/** The command being run, for messages from the stdout error handler. */
let running = '';

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage);
    return name ? 0 : 2;
  }
  if (name === '--version' || name === '-v') {
    console.log(packageVersion());
    return 0;
  }
  const command = commands[name];
  if (!command) {
    console.error(`swiftformer: unknown command '${name}' (commands: ${Object.keys(commands).join(', ')}); see swiftformer --help`);
    return 2;
  }
  running = name;
  try {
    await command.run(rest);
    return 0;
  } catch (err) {
    if (err instanceof SwiftFormerError) {
      console.error(`swiftformer ${name}: ${cliMessage(err.message, command.usage)}`);
      return err.code === 'BAD_ARGUMENT' ? 2 : 1;
    }
    if (isOutputError(err)) {
      if (err.code === 'EPIPE') return process.exitCode === undefined ? 0 : Number(process.exitCode);
      console.error(`swiftformer ${name}: cannot write the output: ${fsReason(err)}`);
      return 1;
    }
    throw err;
  }
}

// A closed pipe (`swiftformer info | head`) ends the output, not the program with a stack trace;
// other asynchronous write errors on stdout are one line too.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') console.error(`swiftformer${running ? ` ${running}` : ''}: cannot write the output: ${fsReason(err)}`);
  process.exit(err.code === 'EPIPE' ? process.exitCode ?? 0 : 1);
});

process.exitCode = await main(process.argv.slice(2));
