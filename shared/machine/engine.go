package machine

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"replaydesk/shared/abi"
	"replaydesk/shared/machine/internal/wasmrw"
	"replaydesk/shared/recordlog"
)

// Engine is one compiled guest module, ready to make machines from. It is
// safe for concurrent use; compiling is the slow part (about a second for a
// Go guest), instantiating is cheap.
type Engine struct {
	rt      wazero.Runtime
	cm      wazero.CompiledModule
	hash    recordlog.ModuleHash
	globals []wasmrw.Global
	n       atomic.Uint64
}

// EngineOptions tunes an Engine.
type EngineOptions struct {
	// CacheDir keeps compiled code across processes ("" means the user cache
	// directory; "-" disables the cache).
	CacheDir string
}

// ModuleHash is the SHA-256 of a guest module's bytes, which binds logs and
// snapshots to it.
func ModuleHash(module []byte) recordlog.ModuleHash { return sha256.Sum256(module) }

// NewEngine validates and compiles a guest module.
func NewEngine(ctx context.Context, module []byte, opt EngineOptions) (*Engine, error) {
	bin, globals, err := wasmrw.ExportMutableGlobals(module)
	if err != nil {
		return nil, fmt.Errorf("machine: guest module: %w", err)
	}
	// Not WithCloseOnContextDone: it would let a step be interrupted, but it
	// made the test card's step ~30x slower here (72 ms instead of 2.4 ms).
	cfg := wazero.NewRuntimeConfigCompiler()
	if dir := cacheDir(opt.CacheDir); dir != "" {
		if cache, err := wazero.NewCompilationCacheWithDir(dir); err == nil {
			cfg = cfg.WithCompilationCache(cache)
		}
	}
	rt := wazero.NewRuntimeWithConfig(ctx, cfg)
	e := &Engine{rt: rt, hash: ModuleHash(module), globals: globals}
	if err := instantiateHostModules(ctx, rt); err != nil {
		rt.Close(ctx)
		return nil, err
	}
	cm, err := rt.CompileModule(ctx, bin)
	if err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("machine: compiling guest module: %w", err)
	}
	if err := checkModule(cm); err != nil {
		rt.Close(ctx)
		return nil, err
	}
	e.cm = cm
	return e, nil
}

func cacheDir(opt string) string {
	switch opt {
	case "-":
		return ""
	case "":
		base, err := os.UserCacheDir()
		if err != nil {
			return ""
		}
		return filepath.Join(base, "replaydesk", "wazero")
	}
	return opt
}

// checkModule refuses guests this host cannot run, before any instance
// exists: another ABI version, a missing export, an unknown import.
func checkModule(cm wazero.CompiledModule) error {
	for _, f := range cm.ImportedFunctions() {
		mod, name, _ := f.Import()
		if strings.HasPrefix(mod, abi.ModulePrefix) && mod != abi.Module {
			return fmt.Errorf("machine: guest imports %s.%s: it was built for guest ABI %s, this host speaks %s",
				mod, name, strings.TrimPrefix(mod, "replaydesk_"), strings.TrimPrefix(abi.Module, "replaydesk_"))
		}
		if _, ok := hostFuncByName[mod+"."+name]; !ok {
			return fmt.Errorf("machine: guest imports %s.%s, which this host does not provide", mod, name)
		}
	}
	exports := cm.ExportedFunctions()
	step, ok := exports[abi.ExportStep]
	if !ok {
		return fmt.Errorf("machine: guest does not export %q", abi.ExportStep)
	}
	if p, r := step.ParamTypes(), step.ResultTypes(); len(p) != 0 || len(r) != 1 || r[0] != api.ValueTypeI32 {
		return fmt.Errorf("machine: guest's %q must be () -> i32", abi.ExportStep)
	}
	if _, ok := exports[abi.ExportInit]; !ok {
		return fmt.Errorf("machine: guest does not export %q (build it with -buildmode=c-shared)", abi.ExportInit)
	}
	if _, ok := cm.ExportedMemories()[abi.ExportMemory]; !ok {
		return fmt.Errorf("machine: guest does not export its memory")
	}
	return nil
}

// Hash is the SHA-256 of the guest module.
func (e *Engine) Hash() recordlog.ModuleHash { return e.hash }

// Close releases compiled code. Machines made from it must be closed first.
func (e *Engine) Close(ctx context.Context) error { return e.rt.Close(ctx) }
