package srctree

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

var (
	dirs = []string{
		"init", "kernel", "kernel/sched", "kernel/time", "kernel/irq", "mm", "fs", "fs/ext4", "fs/proc",
		"fs/nfs", "block", "ipc", "lib", "crypto", "security", "net/core", "net/ipv4", "net/ipv6",
		"drivers/base", "drivers/block", "drivers/char", "drivers/net", "drivers/net/ethernet/intel",
		"drivers/gpu/drm", "drivers/usb/core", "drivers/input", "drivers/tty", "sound/core",
		"arch/x86/kernel", "arch/x86/mm", "arch/x86/entry",
	}
	nouns = []string{"page", "buf", "queue", "dev", "irq", "inode", "sock", "skb", "timer", "task", "node",
		"map", "cache", "slab", "ring", "desc", "port", "link", "chan", "req", "bio", "zone", "vma", "file",
		"entry", "table", "hash", "list", "tree", "lock", "ctx", "state", "frame", "event", "work"}
	verbs = []string{"alloc", "free", "init", "exit", "get", "put", "add", "del", "lookup", "insert",
		"remove", "flush", "sync", "update", "reset", "probe", "attach", "detach", "start", "stop",
		"submit", "complete", "map", "unmap", "handle", "process", "check", "setup", "release", "walk"}
	types = []string{"int", "long", "unsigned int", "unsigned long", "u32", "u64", "size_t", "bool", "void *"}
	heads = []string{"linux/kernel.h", "linux/module.h", "linux/slab.h", "linux/list.h", "linux/spinlock.h",
		"linux/mm.h", "linux/fs.h", "linux/errno.h", "linux/init.h", "linux/sched.h", "linux/netdevice.h",
		"linux/skbuff.h", "linux/interrupt.h", "linux/device.h", "linux/mutex.h", "linux/rcupdate.h"}
)

// TreeSeed fixes the generated tree.
var TreeSeed = [2]uint64{0x6b6275696c64, 1}

// Generate returns a deterministic tree of pseudo-C source files totalling
// at least total bytes: paths such as "drivers/net/skb_queue.c" and
// kernel-flavoured C text.
func Generate(total int) (paths []string, contents [][]byte) {
	r := rand.New(rand.NewPCG(TreeSeed[0], TreeSeed[1]))
	seen := map[string]bool{}
	sum := 0
	for sum < total {
		dir := dirs[r.IntN(len(dirs))]
		name := nouns[r.IntN(len(nouns))] + "_" + nouns[r.IntN(len(nouns))]
		if r.IntN(3) == 0 {
			name = verbs[r.IntN(len(verbs))] + "_" + name
		}
		p := dir + "/" + name + ".c"
		if seen[p] {
			continue
		}
		seen[p] = true
		src := genFile(r, p, 3000+r.IntN(30000))
		paths = append(paths, p)
		contents = append(contents, src)
		sum += len(src)
	}
	return paths, contents
}

func ident(r *rand.Rand) string {
	return nouns[r.IntN(len(nouns))] + "_" + verbs[r.IntN(len(verbs))]
}

func genFile(r *rand.Rand, path string, size int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "// SPDX-License-Identifier: GPL-2.0\n/*\n * %s\n *\n * Copyright (C) %d replaydesk authors\n */\n\n", path, 1991+r.IntN(34))
	for range 3 + r.IntN(6) {
		fmt.Fprintf(&b, "#include <%s>\n", heads[r.IntN(len(heads))])
	}
	prefix := strings.TrimSuffix(path[strings.LastIndexByte(path, '/')+1:], ".c")
	fmt.Fprintf(&b, "\n#define %s_MAX\t%d\n#define %s_SHIFT\t%d\n\n", strings.ToUpper(prefix), 1<<(4+r.IntN(8)), strings.ToUpper(prefix), r.IntN(16))
	fmt.Fprintf(&b, "struct %s {\n", prefix)
	for range 3 + r.IntN(8) {
		fmt.Fprintf(&b, "\t%s\t%s;\n", types[r.IntN(len(types))], nouns[r.IntN(len(nouns))]+"_"+nouns[r.IntN(len(nouns))])
	}
	b.WriteString("\tstruct list_head\tlist;\n\tspinlock_t\t\tlock;\n};\n\n")
	for b.Len() < size {
		fn := prefix + "_" + ident(r)
		arg := nouns[r.IntN(len(nouns))]
		fmt.Fprintf(&b, "static %s %s(struct %s *%s, %s flags)\n{\n", types[r.IntN(len(types)-1)], fn, prefix, arg, types[r.IntN(4)])
		fmt.Fprintf(&b, "\t%s ret = 0;\n\tunsigned long irqflags;\n\n", types[r.IntN(4)])
		fmt.Fprintf(&b, "\tspin_lock_irqsave(&%s->lock, irqflags);\n", arg)
		for range 2 + r.IntN(7) {
			switch r.IntN(5) {
			case 0:
				fmt.Fprintf(&b, "\tif (unlikely(!%s->%s_%s)) {\n\t\tret = -E%s;\n\t\tgoto out;\n\t}\n", arg, nouns[r.IntN(len(nouns))], nouns[r.IntN(len(nouns))], []string{"INVAL", "NOMEM", "BUSY", "NODEV", "AGAIN"}[r.IntN(5)])
			case 1:
				fmt.Fprintf(&b, "\tfor (i = 0; i < %s_MAX; i++)\n\t\tret += %s(%s, i << %d);\n", strings.ToUpper(prefix), ident(r), arg, r.IntN(12))
			case 2:
				fmt.Fprintf(&b, "\t%s->%s_%s = %s(flags, %d);\n", arg, nouns[r.IntN(len(nouns))], nouns[r.IntN(len(nouns))], ident(r), r.IntN(4096))
			case 3:
				fmt.Fprintf(&b, "\tlist_for_each_entry(pos, &%s->list, list) {\n\t\tif (pos->%s == flags)\n\t\t\tbreak;\n\t}\n", arg, nouns[r.IntN(len(nouns))])
			default:
				fmt.Fprintf(&b, "\tpr_debug(\"%s: %s %%d\\n\", ret);\n", fn, verbs[r.IntN(len(verbs))])
			}
		}
		fmt.Fprintf(&b, "out:\n\tspin_unlock_irqrestore(&%s->lock, irqflags);\n\treturn ret;\n}\nEXPORT_SYMBOL_GPL(%s);\n\n", arg, fn)
	}
	return []byte(b.String())
}
