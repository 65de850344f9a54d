/**
 * A small, dependency-free encoder for the parts of the ONNX protobuf schema the graph compiler needs
 * (ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto with external data, ValueInfoProto).
 *
 * Field numbers follow onnx/onnx.proto3 (ONNX 1.18, IR version 11). Only encoding is implemented: the
 * project writes graphs, ONNX Runtime reads them.
 *
 * @module
 */

/** ONNX TensorProto.DataType values used here. */
export const DataType = {
  FLOAT: 1,
  UINT8: 2,
  INT32: 6,
  INT64: 7,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  BFLOAT16: 16,
} as const;
export type DataTypeCode = typeof DataType[keyof typeof DataType];

/** A dimension: a fixed size or a symbolic name. */
export type Dim = number | string;

/** A graph input or output declaration. */
export interface ValueInfo {
  readonly name: string;
  readonly elemType: DataTypeCode;
  readonly shape: readonly Dim[];
}

/** Attribute values; arrays of numbers are INTS unless marked as floats via {@link floats}. */
export type AttributeValue =
  | number
  | string
  | { readonly floats: readonly number[] }
  | { readonly ints: readonly number[] }
  | { readonly float: number }
  | { readonly tensor: TensorInit };

/** A node of the graph. */
export interface Node {
  readonly opType: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly name?: string;
  readonly domain?: string;
  readonly attributes?: Readonly<Record<string, AttributeValue>>;
}

/** An initializer: inline raw bytes or a reference into an external file. */
export type TensorInit =
  & { readonly name: string; readonly dataType: DataTypeCode; readonly dims: readonly number[] }
  & (
    | { readonly raw: Uint8Array }
    | { readonly external: { readonly location: string; readonly offset: number; readonly length: number } }
  );

/** A whole model. */
export interface Model {
  readonly graphName: string;
  readonly nodes: readonly Node[];
  readonly initializers: readonly TensorInit[];
  readonly inputs: readonly ValueInfo[];
  readonly outputs: readonly ValueInfo[];
  readonly opsets: Readonly<Record<string, number>>;
  readonly irVersion?: number;
  readonly producer?: string;
  readonly docString?: string;
}

/** Marks a number attribute as FLOAT rather than INT (integers are otherwise ambiguous in JS). */
export function float(value: number): { readonly float: number } {
  return { float: value };
}

class Writer {
  #chunks: Uint8Array[] = [];
  #buf = new Uint8Array(256);
  #pos = 0;
  #total = 0;

  #ensure(n: number): void {
    if (this.#pos + n <= this.#buf.length) return;
    this.#flush();
    if (n > this.#buf.length) this.#buf = new Uint8Array(Math.max(n, this.#buf.length * 2));
  }
  #flush(): void {
    if (this.#pos > 0) {
      this.#chunks.push(this.#buf.slice(0, this.#pos));
      this.#pos = 0;
    }
  }
  varint(value: number | bigint): void {
    let v = BigInt.asUintN(64, BigInt(value));
    this.#ensure(10);
    while (v >= 0x80n) {
      this.#buf[this.#pos++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.#buf[this.#pos++] = Number(v);
    this.#total += 0; // size is computed in finish()
  }
  bytes(data: Uint8Array): void {
    if (data.length > 4096) {
      this.#flush();
      this.#chunks.push(data);
      return;
    }
    this.#ensure(data.length);
    this.#buf.set(data, this.#pos);
    this.#pos += data.length;
  }
  tag(field: number, wire: 0 | 1 | 2 | 5): void {
    this.varint((field << 3) | wire);
  }
  int(field: number, value: number | bigint): void {
    this.tag(field, 0);
    this.varint(value);
  }
  string(field: number, value: string): void {
    this.lengthDelimited(field, new TextEncoder().encode(value));
  }
  lengthDelimited(field: number, data: Uint8Array): void {
    this.tag(field, 2);
    this.varint(data.length);
    this.bytes(data);
  }
  float32(field: number, value: number): void {
    this.tag(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    this.bytes(b);
  }
  message(field: number, build: (w: Writer) => void): void {
    const inner = new Writer();
    build(inner);
    this.lengthDelimited(field, inner.finish());
  }
  finish(): Uint8Array {
    this.#flush();
    const size = this.#chunks.reduce((s, c) => s + c.length, 0);
    const out = new Uint8Array(size);
    let off = 0;
    for (const c of this.#chunks) {
      out.set(c, off);
      off += c.length;
    }
    return out;
  }
}

function writeTensor(w: Writer, t: TensorInit): void {
  for (const d of t.dims) w.int(1, d);
  w.int(2, t.dataType);
  w.string(8, t.name);
  if ("raw" in t) {
    w.lengthDelimited(9, t.raw);
  } else {
    const entries: [string, string][] = [
      ["location", t.external.location],
      ["offset", String(t.external.offset)],
      ["length", String(t.external.length)],
    ];
    for (const [k, v] of entries) {
      w.message(13, (e) => {
        e.string(1, k);
        e.string(2, v);
      });
    }
    w.int(14, 1); // data_location = EXTERNAL
  }
}

function writeValueInfo(w: Writer, v: ValueInfo): void {
  w.string(1, v.name);
  w.message(2, (type) =>
    type.message(1, (tensor) => {
      tensor.int(1, v.elemType);
      tensor.message(2, (shape) => {
        for (const d of v.shape) {
          shape.message(1, (dim) => typeof d === "number" ? dim.int(1, d) : dim.string(2, d));
        }
      });
    }));
}

const AttrType = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, FLOATS: 6, INTS: 7 } as const;

function writeAttribute(w: Writer, name: string, value: AttributeValue): void {
  w.string(1, name);
  if (typeof value === "number") {
    if (!Number.isInteger(value)) {
      throw new TypeError(`Attribute "${name}" = ${value} is not an integer; wrap floats with float()`);
    }
    w.int(3, value);
    w.int(20, AttrType.INT);
  } else if (typeof value === "string") {
    w.string(4, value);
    w.int(20, AttrType.STRING);
  } else if ("float" in value) {
    w.float32(2, value.float);
    w.int(20, AttrType.FLOAT);
  } else if ("floats" in value) {
    for (const f of value.floats) w.float32(7, f);
    w.int(20, AttrType.FLOATS);
  } else if ("ints" in value) {
    for (const i of value.ints) w.int(8, i);
    w.int(20, AttrType.INTS);
  } else {
    w.message(5, (t) => writeTensor(t, value.tensor));
    w.int(20, AttrType.TENSOR);
  }
}

function writeNode(w: Writer, n: Node): void {
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  if (n.name) w.string(3, n.name);
  w.string(4, n.opType);
  for (const [k, v] of Object.entries(n.attributes ?? {})) w.message(5, (a) => writeAttribute(a, k, v));
  if (n.domain) w.string(7, n.domain);
}

/** Serialise a model to ONNX protobuf bytes. */
export function encodeModel(model: Model): Uint8Array {
  const w = new Writer();
  w.int(1, model.irVersion ?? 11);
  w.string(2, model.producer ?? "backtracking-interp");
  w.string(3, "0.1");
  if (model.docString) w.string(6, model.docString);
  w.message(7, (g) => {
    for (const n of model.nodes) g.message(1, (nw) => writeNode(nw, n));
    g.string(2, model.graphName);
    for (const t of model.initializers) g.message(5, (tw) => writeTensor(tw, t));
    for (const i of model.inputs) g.message(11, (vw) => writeValueInfo(vw, i));
    for (const o of model.outputs) g.message(12, (vw) => writeValueInfo(vw, o));
  });
  for (const [domain, version] of Object.entries(model.opsets)) {
    w.message(8, (o) => {
      if (domain) o.string(1, domain);
      o.int(2, version);
    });
  }
  return w.finish();
}

/** Little-endian raw bytes of an int64 tensor. */
export function int64Raw(values: readonly number[]): Uint8Array {
  const a = new BigInt64Array(values.map((v) => BigInt(v)));
  return new Uint8Array(a.buffer);
}

/** Little-endian raw bytes of a float32 tensor. */
export function float32Raw(values: ArrayLike<number>): Uint8Array {
  const a = Float32Array.from(values as ArrayLike<number>);
  return new Uint8Array(a.buffer);
}
