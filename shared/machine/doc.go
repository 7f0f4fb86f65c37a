// Package machine is the deterministic machine: it loads a guest WebAssembly
// reactor (guest ABI v1, docs/abi.md), calls its step export once per tick,
// and runs in one of three modes: live (no log), record (every
// non-deterministic input goes to a record log) and replay (inputs come from
// the log; nothing touches the world). It checks a replay against the log's
// calls and checkpoints and reports a Divergence with the step, the import
// and what differed. It captures and restores snapshots between steps.
//
// Callers never see wazero types, so another engine (KVM on hosts that have
// it) can stand behind the same API. It must not know about sessions,
// networks of viewers, file layouts of sessions or how the log is stored:
// records go to a RecordSink and come from a RecordSource.
package machine
