/**
 * The ONNX models of the benchmark peers, written as protobuf bytes (onnx.proto3 field numbers): a graph of one
 * node with initializers, one f32 input and one f32 output. Only what those graphs need is encoded.
 */
import { FluxError } from '../errors.ts';

/** onnx.TensorProto.DataType values. */
export const OnnxType = { FLOAT: 1, UINT8: 2 } as const;
type OnnxTypeCode = (typeof OnnxType)[keyof typeof OnnxType];

/** Protobuf wire types. */
const VARINT = 0;
const LENGTH_DELIMITED = 2;

/** ModelProto.ir_version: IR 8 goes with opset 17+ and is read by every onnxruntime since 1.14. */
const IR_VERSION = 8;
const DEFAULT_OPSET = 17;
const MICROSOFT_OPSET = 1;
/** AttributeProto.AttributeType.INT. */
const ATTRIBUTE_INT = 2;

/** Appends protobuf fields; nested messages are encoded first and added as bytes. */
class ProtoWriter {
  private readonly parts: Uint8Array[] = [];
  private length = 0;

  private push(bytes: Uint8Array): void {
    this.parts.push(bytes);
    this.length += bytes.length;
  }

  private varint(value: number): void {
    if (!Number.isSafeInteger(value) || value < 0) throw new FluxError('bad-argument', `protobuf varint ${value} out of range`);
    const bytes: number[] = [];
    let v = value;
    while (v >= 0x80) {
      bytes.push((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    bytes.push(v);
    this.push(Uint8Array.from(bytes));
  }

  private key(field: number, wire: number): void {
    this.varint(field * 8 + wire);
  }

  int(field: number, value: number): this {
    this.key(field, VARINT);
    this.varint(value);
    return this;
  }

  bytes(field: number, value: Uint8Array): this {
    this.key(field, LENGTH_DELIMITED);
    this.varint(value.length);
    this.push(value);
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, new TextEncoder().encode(value));
  }

  message(field: number, build: (w: ProtoWriter) => void): this {
    const inner = new ProtoWriter();
    build(inner);
    return this.bytes(field, inner.finish());
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const p of this.parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}

export interface OnnxInitializer {
  readonly name: string;
  readonly type: OnnxTypeCode;
  readonly dims: readonly number[];
  readonly data: ArrayBufferView;
}

export interface OnnxNode {
  readonly opType: string;
  /** "" for the standard operators, "com.microsoft" for onnxruntime's contrib operators. */
  readonly domain: string;
  readonly inputs: readonly string[];
  readonly output: string;
  readonly intAttributes?: Readonly<Record<string, number>>;
}

export interface OnnxValue {
  readonly name: string;
  readonly dims: readonly number[];
}

function valueInfo(w: ProtoWriter, v: OnnxValue): void {
  w.string(1, v.name).message(2, (type) =>
    type.message(1, (tensor) =>
      tensor.int(1, OnnxType.FLOAT).message(2, (shape) => {
        for (const d of v.dims) shape.message(1, (dim) => dim.int(1, d));
      }),
    ),
  );
}

/** A ModelProto of one node: f32 `input` → node(input, ...initializers) → f32 `output`. */
export function onnxModel(graph: { readonly node: OnnxNode; readonly initializers: readonly OnnxInitializer[]; readonly input: OnnxValue; readonly output: OnnxValue }): Uint8Array {
  const { node } = graph;
  return new ProtoWriter()
    .int(1, IR_VERSION)
    .string(2, 'flux-w4a4 bench')
    .message(7, (g) => {
      g.message(1, (n) => {
        for (const input of node.inputs) n.string(1, input);
        n.string(2, node.output).string(3, node.opType).string(4, node.opType);
        for (const [name, value] of Object.entries(node.intAttributes ?? {})) n.message(5, (a) => a.string(1, name).int(3, value).int(20, ATTRIBUTE_INT));
        if (node.domain) n.string(7, node.domain);
      });
      g.string(2, 'bench');
      for (const t of graph.initializers) {
        g.message(5, (tensor) => {
          for (const d of t.dims) tensor.int(1, d);
          tensor.int(2, t.type).string(8, t.name).bytes(9, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
        });
      }
      g.message(11, (v) => valueInfo(v, graph.input));
      g.message(12, (v) => valueInfo(v, graph.output));
    })
    .message(8, (o) => o.string(1, '').int(2, DEFAULT_OPSET))
    .message(8, (o) => o.string(1, 'com.microsoft').int(2, MICROSOFT_OPSET))
    .finish();
}
