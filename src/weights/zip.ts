/**
 * A defensive ZIP reader and a minimal ZIP writer, enough for torch.save archives.
 *
 * The reader trusts only the central directory (torch writes zeros for sizes and CRC in the
 * local headers and puts them in data descriptors), validates every offset and size against
 * the buffer before touching it, and refuses entry names that could escape a folder when
 * extracted. Stored entries are returned as views into the input, without copying.
 *
 * No node: imports: inflating uses the web-standard DecompressionStream, so this file also
 * runs in browsers.
 */
import { SwiftFormerError } from '../core/errors.js';

export interface ZipEntry {
  readonly name: string;
  /** 0 = stored, 8 = deflate; anything else is rejected when the entry is read. */
  readonly method: number;
  readonly flags: number;
  readonly compressedSize: number;
  readonly size: number;
  readonly crc32: number;
  /** Where the entry's (possibly compressed) bytes start in the archive. */
  readonly dataOffset: number;
}

export interface ZipArchive {
  readonly bytes: Uint8Array;
  /** Entries by name, in central directory order. */
  readonly entries: ReadonlyMap<string, ZipEntry>;
}

export interface ZipWriteEntry {
  readonly name: string;
  readonly data: Uint8Array;
}

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const LOCAL_HEADER_SIZE = 30;
const CENTRAL_HEADER_SIZE = 46;
const EOCD_SIZE = 22;
const ZIP64_LOCATOR_SIZE = 20;
const ZIP64_EOCD_MIN_SIZE = 56;
const ZIP64_EXTRA_ID = 0x0001;
const FLAG_ENCRYPTED = 0x0001 | 0x0040;
const FLAG_UTF8 = 0x0800;
/** Deflate cannot expand data by more than about 1032:1; a larger claim is a zip bomb or corruption. */
const MAX_DEFLATE_RATIO = 1032;

function bad(message: string): never {
  throw new SwiftFormerError('BAD_CHECKPOINT', message);
}

/** Runs `parse`, turning any unexpected exception (RangeError on a short buffer, ...) into BAD_CHECKPOINT. */
function guarded<T>(what: string, parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    if (e instanceof SwiftFormerError) throw e;
    throw new SwiftFormerError('BAD_CHECKPOINT', `${what}: ${(e as Error)?.message ?? String(e)}`, { cause: e });
  }
}

/** Bounds-checked little-endian reads; `part` names the structure in error messages. */
class LittleEndianReader {
  private readonly view: DataView;
  constructor(readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  require(offset: number, length: number, part: string): void {
    if (!(offset >= 0 && length >= 0 && offset + length <= this.bytes.length)) {
      bad(`zip ${part} at offset ${offset} (${length} bytes) runs past the end of the file (file is ${this.bytes.length} bytes)`);
    }
  }
  u16(offset: number, part: string): number {
    this.require(offset, 2, part);
    return this.view.getUint16(offset, true);
  }
  u32(offset: number, part: string): number {
    this.require(offset, 4, part);
    return this.view.getUint32(offset, true);
  }
  /** 64-bit sizes and offsets must fit a JS number exactly; anything larger cannot be a real file. */
  u64(offset: number, part: string): number {
    this.require(offset, 8, part);
    const value = this.view.getBigUint64(offset, true);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) bad(`zip ${part} at offset ${offset} holds an absurd 64-bit value ${value}`);
    return Number(value);
  }
}

function hexPrefix(bytes: Uint8Array): string {
  return Array.from(bytes.subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join(' ');
}

/** True when `bytes` starts like a zip archive (a local file header). */
export function looksLikeZip(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04;
}

/**
 * Searches backwards for the End Of Central Directory record. A zip comment of up to 64 KiB may
 * follow it; a candidate whose comment length reaches exactly the end of the file is preferred,
 * so a signature that happens to occur inside the comment is not mistaken for the record.
 */
function findEndOfCentralDirectory(r: LittleEndianReader): number {
  const length = r.bytes.length;
  const lowest = Math.max(0, length - EOCD_SIZE - 0xffff);
  let fallback = -1;
  for (let pos = length - EOCD_SIZE; pos >= lowest; pos--) {
    if (r.bytes[pos] !== 0x50 || r.u32(pos, 'end of central directory') !== SIG_EOCD) continue;
    const commentEnd = pos + EOCD_SIZE + r.u16(pos + 20, 'end of central directory');
    if (commentEnd === length) return pos;
    if (commentEnd < length && fallback < 0) fallback = pos;
  }
  if (fallback >= 0) return fallback;
  if (length === 0) bad('checkpoint file is empty (0 bytes)');
  if (looksLikeZip(r.bytes)) {
    bad(`checkpoint is truncated: zip central directory not found (file is ${length} bytes; is the download complete?)`);
  }
  bad(`not a zip archive: no zip end of central directory record found (file is ${length} bytes, starts with ${hexPrefix(r.bytes)})`);
}

interface CentralDirectory {
  offset: number;
  size: number;
  count: number;
  /** The directory must end before this offset (its end record). */
  limit: number;
}

function readCentralDirectoryLocation(r: LittleEndianReader, eocd: number): CentralDirectory {
  const part = 'end of central directory';
  if (r.u16(eocd + 4, part) !== 0 || r.u16(eocd + 6, part) !== 0) bad('multi-disk (split) zip archives are not supported');
  const classic = { count: r.u16(eocd + 10, part), size: r.u32(eocd + 12, part), offset: r.u32(eocd + 16, part) };
  const locator = eocd - ZIP64_LOCATOR_SIZE;
  if (locator < 0 || r.u32(locator, 'zip64 locator') !== SIG_ZIP64_LOCATOR) return { ...classic, limit: eocd };
  return readZip64EndOfCentralDirectory(r, r.u64(locator + 8, 'zip64 locator'), locator);
}

function readZip64EndOfCentralDirectory(r: LittleEndianReader, record: number, locator: number): CentralDirectory {
  const part = 'zip64 end of central directory';
  if (record + ZIP64_EOCD_MIN_SIZE > locator) bad(`${part} offset ${record} is not before its locator at ${locator}`);
  if (r.u32(record, part) !== SIG_ZIP64_EOCD) bad(`${part} signature missing at offset ${record}`);
  return { count: r.u64(record + 32, part), size: r.u64(record + 40, part), offset: r.u64(record + 48, part), limit: record };
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function decodeName(raw: Uint8Array, offset: number): string {
  try {
    return utf8.decode(raw);
  } catch {
    return bad(`zip entry name at offset ${offset} is not valid UTF-8`);
  }
}

/** Names that could write outside the extraction folder are refused outright. */
export function checkEntryName(name: string): void {
  const shown = JSON.stringify(name);
  if (name.length === 0) bad('zip entry has an empty name');
  if (name.includes('\0')) bad(`zip entry name ${shown} contains a NUL byte (path escape attempt?)`);
  if (name.includes('\\')) bad(`zip entry name ${shown} contains a backslash (path escape attempt?)`);
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) bad(`zip entry name ${shown} is an absolute path (path escape attempt?)`);
  if (name.split('/').includes('..')) bad(`zip entry name ${shown} contains a '..' segment (path escape attempt?)`);
}

interface Sizes {
  compressedSize: number;
  size: number;
  localOffset: number;
}

/** ZIP64 stores whichever of the three 32-bit fields overflowed (0xFFFFFFFF) in an extra field, in this order. */
function applyZip64Extra(r: LittleEndianReader, start: number, end: number, sizes: Sizes, name: string): Sizes {
  const part = `zip64 extra field of ${JSON.stringify(name)}`;
  for (let pos = start; pos + 4 <= end; ) {
    const id = r.u16(pos, part);
    const length = r.u16(pos + 2, part);
    const dataEnd = pos + 4 + length;
    if (dataEnd > end) bad(`zip extra field of ${JSON.stringify(name)} at offset ${pos} runs past its header`);
    if (id === ZIP64_EXTRA_ID) {
      let field = pos + 4;
      const next = (): number => {
        if (field + 8 > dataEnd) bad(`${part} at offset ${pos} is too short`);
        const value = r.u64(field, part);
        field += 8;
        return value;
      };
      const out = { ...sizes };
      if (sizes.size === 0xffffffff) out.size = next();
      if (sizes.compressedSize === 0xffffffff) out.compressedSize = next();
      if (sizes.localOffset === 0xffffffff) out.localOffset = next();
      return out;
    }
    pos = dataEnd;
  }
  return sizes;
}

interface CentralRecord extends Sizes {
  name: string;
  rawName: Uint8Array;
  method: number;
  flags: number;
  crc32: number;
  next: number;
}

function readCentralRecord(r: LittleEndianReader, pos: number, cdEnd: number): CentralRecord {
  const part = 'central directory entry';
  if (pos + CENTRAL_HEADER_SIZE > cdEnd) bad(`zip ${part} at offset ${pos} runs past the central directory`);
  if (r.u32(pos, part) !== SIG_CENTRAL) bad(`zip ${part} at offset ${pos} has a bad signature (corrupt central directory)`);
  const nameLength = r.u16(pos + 28, part);
  const extraLength = r.u16(pos + 30, part);
  const commentLength = r.u16(pos + 32, part);
  const nameStart = pos + CENTRAL_HEADER_SIZE;
  const next = nameStart + nameLength + extraLength + commentLength;
  if (next > cdEnd) bad(`zip ${part} at offset ${pos} runs past the central directory`);
  const rawName = r.bytes.subarray(nameStart, nameStart + nameLength);
  const name = decodeName(rawName, nameStart);
  checkEntryName(name);
  const sizes = applyZip64Extra(r, nameStart + nameLength, nameStart + nameLength + extraLength, {
    compressedSize: r.u32(pos + 20, part),
    size: r.u32(pos + 24, part),
    localOffset: r.u32(pos + 42, part),
  }, name);
  const flags = r.u16(pos + 8, part);
  return { ...sizes, name, rawName, flags, method: r.u16(pos + 10, part), crc32: r.u32(pos + 16, part), next };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Checks the local header the central directory points at, and where the entry's data really starts. */
function locateData(r: LittleEndianReader, record: CentralRecord, dataLimit: number): number {
  const shown = JSON.stringify(record.name);
  const at = record.localOffset;
  if (at + LOCAL_HEADER_SIZE > dataLimit) bad(`zip local header of ${shown} at offset ${at} lies outside the file data (limit ${dataLimit})`);
  if (r.u32(at, 'local header') !== SIG_LOCAL) bad(`zip local header of ${shown} at offset ${at} has a bad signature (corrupt or truncated file)`);
  const nameLength = r.u16(at + 26, 'local header');
  const extraLength = r.u16(at + 28, 'local header');
  const nameStart = at + LOCAL_HEADER_SIZE;
  r.require(nameStart, nameLength + extraLength, `local header of ${shown}`);
  if (!sameBytes(r.bytes.subarray(nameStart, nameStart + nameLength), record.rawName)) {
    bad(`zip local header at offset ${at} names a different file than the central directory entry ${shown}`);
  }
  const dataOffset = nameStart + nameLength + extraLength;
  const end = dataOffset + record.compressedSize;
  if (end > r.bytes.length) {
    bad(`zip entry ${shown} runs past the end of the file (data at offset ${dataOffset}, ${record.compressedSize} bytes, file is ${r.bytes.length} bytes)`);
  }
  if (end > dataLimit) bad(`zip entry ${shown} (offset ${dataOffset}, ${record.compressedSize} bytes) overlaps the central directory at ${dataLimit}`);
  return dataOffset;
}

/** Parses the archive's directory. Throws BAD_CHECKPOINT on anything malformed. */
export function readZip(bytes: Uint8Array): ZipArchive {
  return guarded('corrupt zip archive', () => {
    const r = new LittleEndianReader(bytes);
    const eocd = findEndOfCentralDirectory(r);
    const cd = readCentralDirectoryLocation(r, eocd);
    const cdEnd = cd.offset + cd.size;
    if (cdEnd > cd.limit) {
      bad(`checkpoint is truncated or corrupt: zip central directory (offset ${cd.offset}, ${cd.size} bytes) runs past its end record at ${cd.limit}`);
    }
    if (cd.count * CENTRAL_HEADER_SIZE > cd.size) bad(`zip claims ${cd.count} entries but its central directory is only ${cd.size} bytes`);
    const entries = new Map<string, ZipEntry>();
    let pos = cd.offset;
    for (let i = 0; i < cd.count; i++) {
      const record = readCentralRecord(r, pos, cdEnd);
      if (entries.has(record.name)) bad(`zip has two entries named ${JSON.stringify(record.name)}`);
      const dataOffset = locateData(r, record, cd.offset);
      const { name, method, flags, compressedSize, size, crc32 } = record;
      entries.set(name, { name, method, flags, compressedSize, size, crc32, dataOffset });
      pos = record.next;
    }
    return { bytes, entries };
  });
}

/**
 * The entry's uncompressed bytes. Stored entries are views into the archive (no copy).
 * The CRC is checked unless `verifyCrc` is false.
 */
export async function readZipEntry(zip: ZipArchive, name: string, options: { verifyCrc?: boolean } = {}): Promise<Uint8Array> {
  const entry = zip.entries.get(name);
  if (!entry) bad(`zip has no entry ${JSON.stringify(name)}`);
  const shown = JSON.stringify(name);
  if (entry.flags & FLAG_ENCRYPTED) bad(`zip entry ${shown} is encrypted`);
  const raw = zip.bytes.subarray(entry.dataOffset, entry.dataOffset + entry.compressedSize);
  let data: Uint8Array;
  if (entry.method === 0) {
    if (entry.size !== entry.compressedSize) bad(`zip entry ${shown} is stored but its sizes differ (${entry.compressedSize} vs ${entry.size})`);
    data = raw;
  } else if (entry.method === 8) {
    data = await inflateRaw(raw, entry.size, shown);
  } else {
    bad(`zip entry ${shown} uses unsupported compression method ${entry.method} (only stored and deflate are supported)`);
  }
  if (options.verifyCrc !== false && crc32(data) !== entry.crc32) {
    bad(`zip entry ${shown} is corrupt: CRC-32 mismatch`);
  }
  return data;
}

/** Inflates raw deflate data, refusing to produce more than the declared size. */
async function inflateRaw(compressed: Uint8Array, size: number, shown: string): Promise<Uint8Array> {
  if (size > compressed.length * MAX_DEFLATE_RATIO + 1024) {
    bad(`zip entry ${shown} claims ${size} bytes from ${compressed.length} compressed bytes, which deflate cannot do`);
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    const source = new Blob([compressed as Uint8Array<ArrayBuffer>]).stream();
    const reader = source.pipeThrough(new DecompressionStream('deflate-raw')).getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > size) {
        await reader.cancel().catch(() => undefined);
        break;
      }
      chunks.push(value);
    }
  } catch (e) {
    bad(`zip entry ${shown} is corrupt: cannot inflate (${(e as Error)?.message ?? String(e)})`);
  }
  if (total !== size) bad(`zip entry ${shown} is corrupt: inflated to ${total > size ? 'more than' : total} bytes, expected ${size}`);
  return concat(chunks, size);
}

function concat(chunks: readonly Uint8Array[], size: number): Uint8Array {
  if (chunks.length === 1 && chunks[0]) return chunks[0];
  const out = new Uint8Array(size);
  let pos = 0;
  for (const chunk of chunks) {
    out.set(chunk, pos);
    pos += chunk.length;
  }
  return out;
}

let crcTable: Uint32Array | undefined;

function makeCrcTable(): Uint32Array {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
}

/** CRC-32 (IEEE 802.3), as zip uses it. */
export function crc32(bytes: Uint8Array): number {
  const table = (crcTable ??= makeCrcTable());
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = table[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function argumentError(message: string): never {
  throw new SwiftFormerError('BAD_ARGUMENT', message);
}

/** Extra-field id used only to pad local headers so that entry data is aligned. */
const PADDING_EXTRA_ID = 0x4650;
const DOS_DATE_1980_01_01 = 0x0021;

/** Extra bytes needed after a local header so the data starts on an `align` boundary (0 or >= 4). */
function paddingFor(headerEnd: number, align: number): number {
  if (headerEnd % align === 0) return 0;
  return 4 + ((align - ((headerEnd + 4) % align)) % align);
}

/**
 * Writes a ZIP_STORED archive. Entry data starts on `align`-byte boundaries (default 64, as
 * torch.save does) so that readers can view storages in place. No ZIP64: outputs over 4 GiB
 * are refused.
 */
export function writeZip(entries: readonly ZipWriteEntry[], options: { align?: number } = {}): Uint8Array {
  const align = options.align ?? 64;
  if (!Number.isInteger(align) || align < 1 || align > 0x8000) argumentError(`zip alignment must be an integer in [1, 32768], got ${align}`);
  if (entries.length >= 0xffff) argumentError(`too many zip entries (${entries.length}); ZIP64 output is not supported`);
  const encoder = new TextEncoder();
  const seen = new Set<string>();
  const layout = entries.map((entry) => {
    try {
      checkEntryName(entry.name);
    } catch (e) {
      argumentError((e as Error).message);
    }
    if (seen.has(entry.name)) argumentError(`duplicate zip entry name ${JSON.stringify(entry.name)}`);
    seen.add(entry.name);
    return { name: encoder.encode(entry.name), data: entry.data, crc: crc32(entry.data), offset: 0, padding: 0 };
  });
  let pos = 0;
  for (const item of layout) {
    item.offset = pos;
    item.padding = paddingFor(pos + LOCAL_HEADER_SIZE + item.name.length, align);
    pos += LOCAL_HEADER_SIZE + item.name.length + item.padding + item.data.length;
  }
  const cdOffset = pos;
  const cdSize = layout.reduce((n, item) => n + CENTRAL_HEADER_SIZE + item.name.length, 0);
  const total = cdOffset + cdSize + EOCD_SIZE;
  if (total > 0xffffffff) argumentError(`zip output would be ${total} bytes; ZIP64 output is not supported`);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  for (const item of layout) writeLocalEntry(out, view, item);
  let cd = cdOffset;
  for (const item of layout) cd = writeCentralEntry(out, view, cd, item);
  writeEndOfCentralDirectory(view, cd, layout.length, cdSize, cdOffset);
  return out;
}

interface LaidOutEntry {
  name: Uint8Array;
  data: Uint8Array;
  crc: number;
  offset: number;
  padding: number;
}

/** Fields shared by local and central headers: version, flags, method, time, date, crc, sizes. */
function writeCommonFields(view: DataView, at: number, item: LaidOutEntry): void {
  view.setUint16(at, 20, true);
  view.setUint16(at + 2, FLAG_UTF8, true);
  view.setUint16(at + 4, 0, true);
  view.setUint16(at + 6, 0, true);
  view.setUint16(at + 8, DOS_DATE_1980_01_01, true);
  view.setUint32(at + 10, item.crc, true);
  view.setUint32(at + 14, item.data.length, true);
  view.setUint32(at + 18, item.data.length, true);
}

function writeLocalEntry(out: Uint8Array, view: DataView, item: LaidOutEntry): void {
  const at = item.offset;
  view.setUint32(at, SIG_LOCAL, true);
  writeCommonFields(view, at + 4, item);
  view.setUint16(at + 26, item.name.length, true);
  view.setUint16(at + 28, item.padding, true);
  out.set(item.name, at + LOCAL_HEADER_SIZE);
  if (item.padding > 0) {
    const extra = at + LOCAL_HEADER_SIZE + item.name.length;
    view.setUint16(extra, PADDING_EXTRA_ID, true);
    view.setUint16(extra + 2, item.padding - 4, true);
  }
  out.set(item.data, at + LOCAL_HEADER_SIZE + item.name.length + item.padding);
}

function writeCentralEntry(out: Uint8Array, view: DataView, at: number, item: LaidOutEntry): number {
  view.setUint32(at, SIG_CENTRAL, true);
  view.setUint16(at + 4, 20, true);
  writeCommonFields(view, at + 6, item);
  view.setUint16(at + 28, item.name.length, true);
  view.setUint32(at + 42, item.offset, true);
  out.set(item.name, at + CENTRAL_HEADER_SIZE);
  return at + CENTRAL_HEADER_SIZE + item.name.length;
}

function writeEndOfCentralDirectory(view: DataView, at: number, count: number, cdSize: number, cdOffset: number): void {
  view.setUint32(at, SIG_EOCD, true);
  view.setUint16(at + 8, count, true);
  view.setUint16(at + 10, count, true);
  view.setUint32(at + 12, cdSize, true);
  view.setUint32(at + 16, cdOffset, true);
}
