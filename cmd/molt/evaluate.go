package main

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/molt-dev/molt/schema"
	"github.com/spf13/pflag"
)

// evalCommand is the hidden command a child of molt runs to evaluate one
// fleet (schema.RunChild): snapshot on stdin, result on stdout. It is
// taken before the command line is parsed, so that the child limits
// itself first thing.
const evalCommand = "__evaluate"

// evalFlags bound the loading of a fleet: the caps on its files, checked
// before evaluation, and the limits of the child process that evaluates
// it. Each flag's default comes from its MOLT_EVAL_* variable when set.
type evalFlags struct {
	wall, cpu                   time.Duration
	memory                      sizeValue
	maxFileBytes, maxTotalBytes sizeValue
	maxFiles, maxDepth          int
	envErr                      error // a MOLT_EVAL_* variable that is not a valid value
}

// evalEnv maps each flag to its environment variable.
var evalEnv = [][2]string{
	{"eval-timeout", "MOLT_EVAL_TIMEOUT"},
	{"eval-memory", "MOLT_EVAL_MEMORY"},
	{"eval-cpu", "MOLT_EVAL_CPU"},
	{"eval-max-files", "MOLT_EVAL_MAX_FILES"},
	{"eval-max-bytes", "MOLT_EVAL_MAX_BYTES"},
	{"eval-max-file-bytes", "MOLT_EVAL_MAX_FILE_BYTES"},
	{"eval-max-depth", "MOLT_EVAL_MAX_DEPTH"},
}

func (f *evalFlags) register(fs *pflag.FlagSet) {
	f.memory, f.maxFileBytes, f.maxTotalBytes = schema.DefaultMemory, schema.DefaultMaxFileBytes, schema.DefaultMaxTotalBytes
	fs.DurationVar(&f.wall, "eval-timeout", schema.DefaultWall, "wall-clock limit of one CUE evaluation (or MOLT_EVAL_TIMEOUT)")
	fs.Var(&f.memory, "eval-memory", "memory limit of one CUE evaluation, e.g. 512MiB (or MOLT_EVAL_MEMORY)")
	fs.DurationVar(&f.cpu, "eval-cpu", schema.DefaultCPU, "CPU-time limit of one CUE evaluation, whole seconds (or MOLT_EVAL_CPU)")
	fs.IntVar(&f.maxFiles, "eval-max-files", schema.DefaultMaxFiles, "most .cue files a fleet may have (or MOLT_EVAL_MAX_FILES)")
	fs.Var(&f.maxTotalBytes, "eval-max-bytes", "most bytes a fleet's .cue files may add up to (or MOLT_EVAL_MAX_BYTES)")
	fs.Var(&f.maxFileBytes, "eval-max-file-bytes", "largest .cue file (or MOLT_EVAL_MAX_FILE_BYTES)")
	fs.IntVar(&f.maxDepth, "eval-max-depth", schema.DefaultMaxDepth, "deepest directory nesting of a fleet module (or MOLT_EVAL_MAX_DEPTH)")
	for _, fe := range evalEnv {
		if v := os.Getenv(fe[1]); v != "" {
			if err := fs.Set(fe[0], v); err != nil && f.envErr == nil {
				f.envErr = fmt.Errorf("%s=%q: %w", fe[1], v, err)
			}
			fs.Lookup(fe[0]).Changed = false
		}
	}
}

// loader returns the loader of these flags: every fleet is evaluated in a
// child process of this executable.
func (f *evalFlags) loader(log *slog.Logger) (schema.Loader, error) {
	if f.envErr != nil {
		return schema.Loader{}, &usageError{f.envErr}
	}
	if f.wall <= 0 || f.cpu <= 0 || f.memory <= 0 || f.maxFiles <= 0 || f.maxDepth <= 0 || f.maxFileBytes <= 0 || f.maxTotalBytes <= 0 {
		return schema.Loader{}, &usageError{fmt.Errorf("the --eval-* limits must be positive")}
	}
	exe, err := evalExecutable()
	if err != nil {
		return schema.Loader{}, fmt.Errorf("find molt's executable for evaluation: %w", err)
	}
	names := schema.LimitNames{
		MaxFileBytes: "--eval-max-file-bytes", MaxTotalBytes: "--eval-max-bytes",
		MaxFiles: "--eval-max-files", MaxDepth: "--eval-max-depth",
		Wall: "--eval-timeout", Memory: "--eval-memory", CPU: "--eval-cpu",
	}
	return schema.Loader{
		MaxFileBytes:  int64(f.maxFileBytes),
		MaxTotalBytes: int64(f.maxTotalBytes),
		MaxFiles:      f.maxFiles,
		MaxDepth:      f.maxDepth,
		Names:         names,
		Evaluator: &schema.Child{
			// argv[0] is "molt" whatever the file is called (a test
			// binary dispatches on it).
			Path:   exe,
			Args:   []string{"molt", evalCommand},
			Limits: schema.Limits{Wall: f.wall, Memory: int64(f.memory), CPU: f.cpu},
			Names:  names,
			Log:    log,
		},
	}, nil
}

// evalExecutableEnv names another build of molt to run the evaluation
// children (the tests use one built without the race detector).
const evalExecutableEnv = "MOLT_EVAL_EXECUTABLE"

// evalExecutable is the program the evaluation children run: molt itself,
// unless MOLT_EVAL_EXECUTABLE names another build of it.
func evalExecutable() (string, error) {
	if v := os.Getenv(evalExecutableEnv); v != "" {
		return v, nil
	}
	return os.Executable()
}

// defaultLoader is the loader of a command without --eval-* flags: the
// default limits, still in a child process.
func defaultLoader(log *slog.Logger) schema.Loader {
	var f evalFlags
	f.register(pflag.NewFlagSet("eval", pflag.ContinueOnError))
	ld, err := f.loader(log)
	if err != nil {
		// A bad MOLT_EVAL_* variable, or no executable: the defaults,
		// in a child when one can be started.
		ld = schema.Loader{}
		if exe, xerr := evalExecutable(); xerr == nil {
			ld.Evaluator = &schema.Child{Path: exe, Args: []string{"molt", evalCommand}, Log: log}
		}
	}
	return ld
}

// sizeValue is a byte count flag: 1073741824, 1GiB, 512MiB, 64KiB.
type sizeValue int64

func (s *sizeValue) String() string {
	n := int64(*s)
	for _, u := range []struct {
		suffix string
		shift  uint
	}{{"GiB", 30}, {"MiB", 20}, {"KiB", 10}} {
		if n >= 1<<u.shift && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

func (s *sizeValue) Set(v string) error {
	shift := uint(0)
	for _, u := range []struct {
		suffix string
		shift  uint
	}{{"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}} {
		if n, ok := strings.CutSuffix(v, u.suffix); ok {
			v, shift = n, u.shift
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n <= 0 || n > (1<<62)>>shift {
		return fmt.Errorf("want a positive byte count such as 1GiB, 512MiB or 65536")
	}
	*s = sizeValue(n << shift)
	return nil
}

func (s *sizeValue) Type() string { return "size" }
