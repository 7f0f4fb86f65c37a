// Package shell is the desk terminal's command language and line
// discipline: a small shell over a deskfs file system (ls, cd, cat, echo with
// > and >> redirection, mkdir, rm, cp, mv, grep, wc, edit, help…) and Term,
// the terminal's model (scrollback, an input line with a cursor, history).
//
// It knows nothing about pixels, windows or the guest ABI: the desk renders
// a Term and feeds it keys; tests drive it natively.
package shell

import (
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	"replaydesk/server/images/desk/deskfs"
)

// Shell runs command lines against a file system.
type Shell struct {
	FS  *deskfs.FS
	Cwd string // absolute, clean
	// Edit opens path (absolute) in the editor; nil makes `edit` fail.
	Edit func(path string) error
	// Now is the clock for `date`; nil means time.Now.
	Now func() time.Time
	// User is who typed the last command line (for `whoami`).
	User string
}

// New returns a shell in the root directory.
func New(fs *deskfs.FS) *Shell { return &Shell{FS: fs, Cwd: "/"} }

// Abs resolves p against the current directory.
func (s *Shell) Abs(p string) string {
	if strings.HasPrefix(p, "/") {
		return path.Clean(p)
	}
	return path.Clean(s.Cwd + "/" + p)
}

// commands maps names to implementations and one line of help each.
var commands map[string]struct {
	run  func(s *Shell, args []string, out *strings.Builder) error
	help string
}

func init() {
	commands = map[string]struct {
		run  func(s *Shell, args []string, out *strings.Builder) error
		help string
	}{
		"help":    {(*Shell).help, "help              this list"},
		"ls":      {(*Shell).ls, "ls [-l] [DIR...]  list a directory"},
		"cd":      {(*Shell).cd, "cd [DIR]          change directory (default /)"},
		"pwd":     {(*Shell).pwd, "pwd               print the current directory"},
		"cat":     {(*Shell).cat, "cat FILE...       print files"},
		"echo":    {(*Shell).echo, "echo TEXT [> F]   print text; > writes F, >> appends"},
		"mkdir":   {(*Shell).mkdir, "mkdir [-p] DIR... make directories"},
		"rm":      {(*Shell).rm, "rm [-r] PATH...   remove files (-r: directories too)"},
		"cp":      {(*Shell).cp, "cp SRC... DST     copy files (DST may be a directory)"},
		"mv":      {(*Shell).mv, "mv SRC... DST     move or rename"},
		"grep":    {(*Shell).grep, "grep [-i] PAT F.. lines of files that contain PAT"},
		"wc":      {(*Shell).wc, "wc FILE...        count lines, words, bytes"},
		"touch":   {(*Shell).touch, "touch FILE...     create empty files"},
		"edit":    {(*Shell).edit, "edit FILE         open FILE in the editor"},
		"date":    {(*Shell).date, "date              the (virtual) time"},
		"df":      {(*Shell).df, "df                free space on the disk"},
		"whoami":  {(*Shell).whoami, "whoami            who typed this"},
		"clear":   {nil, "clear             clear the terminal"},
		"history": {nil, "history           earlier command lines"},
	}
}

// Run executes one command line and returns its output (which ends in a
// newline unless empty).
func (s *Shell) Run(line string) string {
	args, redir, appendMode, err := parse(line)
	var out strings.Builder
	if err != nil {
		return "sh: " + err.Error() + "\n"
	}
	if len(args) == 0 {
		if redir != "" {
			return "sh: missing command\n"
		}
		return ""
	}
	cmd, ok := commands[args[0]]
	if !ok || cmd.run == nil {
		return fmt.Sprintf("sh: %s: command not found (try help)\n", args[0])
	}
	var body strings.Builder
	if err := cmd.run(s, args[1:], &body); err != nil {
		out.WriteString(args[0] + ": " + err.Error() + "\n")
	}
	if redir == "" {
		return body.String() + out.String()
	}
	target := s.Abs(redir)
	data := []byte(body.String())
	if appendMode {
		old, err := s.FS.ReadFile(target)
		if err != nil && !errors.Is(err, deskfs.ErrNotExist) {
			return out.String() + "sh: " + err.Error() + "\n"
		}
		data = append(old, data...)
	}
	if err := s.FS.WriteFile(target, data); err != nil {
		out.WriteString("sh: " + err.Error() + "\n")
	}
	return out.String()
}

// parse splits a line into words (with '…' and "…" quoting and \ escapes)
// and a trailing > or >> redirection.
func parse(line string) (args []string, redir string, appendMode bool, err error) {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	isRedir := map[int]bool{}
	rs := []rune(line)
	for i := 0; i < len(rs); i++ {
		c := rs[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteRune(c)
			}
		case c == '\'' || c == '"':
			quote, inWord = c, true
		case c == '\\' && i+1 < len(rs):
			i++
			cur.WriteRune(rs[i])
			inWord = true
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '>':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
			op := ">"
			if i+1 < len(rs) && rs[i+1] == '>' {
				op, i = ">>", i+1
			}
			isRedir[len(words)] = true
			words = append(words, op)
		default:
			cur.WriteRune(c)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, "", false, errors.New("unterminated quote")
	}
	if inWord {
		words = append(words, cur.String())
	}
	for i := 0; i < len(words); i++ {
		if !isRedir[i] {
			args = append(args, words[i])
			continue
		}
		if redir != "" || i+1 >= len(words) || isRedir[i+1] {
			return nil, "", false, errors.New("bad redirection")
		}
		redir, appendMode = words[i+1], words[i] == ">>"
		i++
	}
	return args, redir, appendMode, nil
}

// flags splits leading -x options off args.
func flags(args []string, allowed string) (map[rune]bool, []string, error) {
	f := map[rune]bool{}
	for len(args) > 0 && len(args[0]) > 1 && args[0][0] == '-' {
		for _, c := range args[0][1:] {
			if !strings.ContainsRune(allowed, c) {
				return nil, nil, fmt.Errorf("unknown option -%c", c)
			}
			f[c] = true
		}
		args = args[1:]
	}
	return f, args, nil
}

// short strips the *PathError wrapping down to "PATH: reason".
func short(err error) error {
	var pe *deskfs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	return err
}

func (s *Shell) help(args []string, out *strings.Builder) error {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	out.WriteString("Commands (files live on the desk's disk; paths may be relative):\n")
	for _, n := range names {
		out.WriteString("  " + commands[n].help + "\n")
	}
	out.WriteString("Keys: Up/Down history, PageUp/PageDown or the wheel scroll.\n")
	return nil
}

func (s *Shell) ls(args []string, out *strings.Builder) error {
	f, args, err := flags(args, "la")
	if err != nil {
		return err
	}
	if len(args) == 0 {
		args = []string{"."}
	}
	var errs []error
	for k, a := range args {
		p := s.Abs(a)
		st, err := s.FS.Stat(p)
		if err != nil {
			errs = append(errs, short(err))
			continue
		}
		ents := []deskfs.Info{st}
		if st.Dir {
			if ents, err = s.FS.ReadDir(p); err != nil {
				errs = append(errs, short(err))
				continue
			}
			if len(args) > 1 {
				if k > 0 {
					out.WriteString("\n")
				}
				out.WriteString(a + ":\n")
			}
		}
		if f['l'] {
			for _, e := range ents {
				kind, name := "-", e.Name
				if e.Dir {
					kind, name = "d", name+"/"
				}
				mt := time.Unix(e.MTime, 0).UTC().Format("Jan _2 15:04")
				fmt.Fprintf(out, "%s %7d  %s  %s\n", kind, e.Size, mt, name)
			}
			continue
		}
		var names []string
		for _, e := range ents {
			if e.Dir {
				names = append(names, e.Name+"/")
			} else {
				names = append(names, e.Name)
			}
		}
		if len(names) > 0 {
			out.WriteString(strings.Join(names, "  ") + "\n")
		}
	}
	return errors.Join(errs...)
}

func (s *Shell) cd(args []string, out *strings.Builder) error {
	p := "/"
	if len(args) > 1 {
		return errors.New("too many arguments")
	}
	if len(args) == 1 {
		p = s.Abs(args[0])
	}
	st, err := s.FS.Stat(p)
	if err != nil {
		return short(err)
	}
	if !st.Dir {
		return fmt.Errorf("%s: %w", args[0], deskfs.ErrNotDir)
	}
	s.Cwd = p
	return nil
}

func (s *Shell) pwd(args []string, out *strings.Builder) error {
	out.WriteString(s.Cwd + "\n")
	return nil
}

func (s *Shell) cat(args []string, out *strings.Builder) error {
	if len(args) == 0 {
		return errors.New("missing file operand")
	}
	var errs []error
	for _, a := range args {
		b, err := s.FS.ReadFile(s.Abs(a))
		if err != nil {
			errs = append(errs, short(err))
			continue
		}
		out.Write(b)
		if len(b) > 0 && b[len(b)-1] != '\n' {
			out.WriteString("\n")
		}
	}
	return errors.Join(errs...)
}

func (s *Shell) echo(args []string, out *strings.Builder) error {
	out.WriteString(strings.Join(args, " ") + "\n")
	return nil
}

func (s *Shell) mkdir(args []string, out *strings.Builder) error {
	f, args, err := flags(args, "p")
	if err != nil {
		return err
	}
	if len(args) == 0 {
		return errors.New("missing operand")
	}
	var errs []error
	for _, a := range args {
		if f['p'] {
			err = s.FS.MkdirAll(s.Abs(a))
		} else {
			err = s.FS.Mkdir(s.Abs(a))
		}
		if err != nil {
			errs = append(errs, short(err))
		}
	}
	return errors.Join(errs...)
}

func (s *Shell) removeAll(p string) error {
	st, err := s.FS.Stat(p)
	if err != nil {
		return err
	}
	if st.Dir {
		ents, err := s.FS.ReadDir(p)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if err := s.removeAll(p + "/" + e.Name); err != nil {
				return err
			}
		}
	}
	return s.FS.Remove(p)
}

func (s *Shell) rm(args []string, out *strings.Builder) error {
	f, args, err := flags(args, "rf")
	if err != nil {
		return err
	}
	if len(args) == 0 {
		return errors.New("missing operand")
	}
	var errs []error
	for _, a := range args {
		p := s.Abs(a)
		if p == "/" {
			errs = append(errs, errors.New("refusing to remove /"))
			continue
		}
		st, err := s.FS.Stat(p)
		switch {
		case err != nil:
			errs = append(errs, short(err))
		case st.Dir && !f['r']:
			errs = append(errs, fmt.Errorf("%s: %w (use rm -r)", a, deskfs.ErrIsDir))
		case st.Dir:
			if err := s.removeAll(p); err != nil {
				errs = append(errs, short(err))
			}
		default:
			if err := s.FS.Remove(p); err != nil {
				errs = append(errs, short(err))
			}
		}
	}
	return errors.Join(errs...)
}

// targets resolves cp/mv operands: each source and where it goes.
func (s *Shell) targets(args []string) ([][2]string, error) {
	if len(args) < 2 {
		return nil, errors.New("need a source and a destination")
	}
	dst := s.Abs(args[len(args)-1])
	st, err := s.FS.Stat(dst)
	isDir := err == nil && st.Dir
	srcs := args[:len(args)-1]
	if len(srcs) > 1 && !isDir {
		return nil, fmt.Errorf("%s: %w", args[len(args)-1], deskfs.ErrNotDir)
	}
	var out [][2]string
	for _, a := range srcs {
		src := s.Abs(a)
		to := dst
		if isDir {
			to = path.Join(dst, path.Base(src))
		}
		out = append(out, [2]string{src, to})
	}
	return out, nil
}

func (s *Shell) cp(args []string, out *strings.Builder) error {
	pairs, err := s.targets(args)
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range pairs {
		b, err := s.FS.ReadFile(p[0])
		if err == nil {
			err = s.FS.WriteFile(p[1], b)
		}
		if err != nil {
			errs = append(errs, short(err))
		}
	}
	return errors.Join(errs...)
}

func (s *Shell) mv(args []string, out *strings.Builder) error {
	pairs, err := s.targets(args)
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range pairs {
		if st, err := s.FS.Stat(p[1]); err == nil && !st.Dir {
			s.FS.Remove(p[1]) // mv replaces an existing file, as in Unix
		}
		if err := s.FS.Rename(p[0], p[1]); err != nil {
			errs = append(errs, short(err))
		} else if strings.HasPrefix(s.Cwd+"/", p[0]+"/") {
			s.Cwd = path.Clean(p[1] + strings.TrimPrefix(s.Cwd, p[0]))
		}
	}
	return errors.Join(errs...)
}

func (s *Shell) grep(args []string, out *strings.Builder) error {
	f, args, err := flags(args, "in")
	if err != nil {
		return err
	}
	if len(args) < 2 {
		return errors.New("usage: grep [-i] [-n] PATTERN FILE...")
	}
	pat := args[0]
	if f['i'] {
		pat = strings.ToLower(pat)
	}
	var errs []error
	for _, a := range args[1:] {
		b, err := s.FS.ReadFile(s.Abs(a))
		if err != nil {
			errs = append(errs, short(err))
			continue
		}
		for n, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
			l := line
			if f['i'] {
				l = strings.ToLower(l)
			}
			if !strings.Contains(l, pat) {
				continue
			}
			if len(args) > 2 {
				out.WriteString(a + ":")
			}
			if f['n'] {
				fmt.Fprintf(out, "%d:", n+1)
			}
			out.WriteString(line + "\n")
		}
	}
	return errors.Join(errs...)
}

func (s *Shell) wc(args []string, out *strings.Builder) error {
	if len(args) == 0 {
		return errors.New("missing file operand")
	}
	var errs []error
	var tl, tw, tb int
	for _, a := range args {
		b, err := s.FS.ReadFile(s.Abs(a))
		if err != nil {
			errs = append(errs, short(err))
			continue
		}
		l, w := strings.Count(string(b), "\n"), len(strings.Fields(string(b)))
		tl, tw, tb = tl+l, tw+w, tb+len(b)
		fmt.Fprintf(out, "%5d %5d %6d %s\n", l, w, len(b), a)
	}
	if len(args) > 1 {
		fmt.Fprintf(out, "%5d %5d %6d total\n", tl, tw, tb)
	}
	return errors.Join(errs...)
}

func (s *Shell) touch(args []string, out *strings.Builder) error {
	var errs []error
	for _, a := range args {
		p := s.Abs(a)
		if _, err := s.FS.Stat(p); err == nil {
			continue
		}
		if err := s.FS.WriteFile(p, nil); err != nil {
			errs = append(errs, short(err))
		}
	}
	return errors.Join(errs...)
}

func (s *Shell) edit(args []string, out *strings.Builder) error {
	if len(args) != 1 {
		return errors.New("usage: edit FILE")
	}
	if s.Edit == nil {
		return errors.New("no editor here")
	}
	p := s.Abs(args[0])
	if st, err := s.FS.Stat(p); err == nil && st.Dir {
		return fmt.Errorf("%s: %w", args[0], deskfs.ErrIsDir)
	}
	return short(s.Edit(p))
}

func (s *Shell) date(args []string, out *strings.Builder) error {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	out.WriteString(now().UTC().Format("Mon Jan _2 15:04:05 UTC 2006") + "\n")
	return nil
}

func (s *Shell) df(args []string, out *strings.Builder) error {
	b, i := s.FS.Free()
	fmt.Fprintf(out, "%d KiB free in %d blocks, %d inodes free\n", b*deskfs.BlockSize/1024, b, i)
	return nil
}

func (s *Shell) whoami(args []string, out *strings.Builder) error {
	u := s.User
	if u == "" {
		u = "nobody"
	}
	out.WriteString(u + "\n")
	return nil
}
