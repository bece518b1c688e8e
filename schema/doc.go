// Package schema defines a fleet's desired state: the CUE schema that molt
// embeds (molt.cue, printed by Source) and a hermetic loader that turns a
// repository snapshot into a validated *Fleet with every default filled in.
//
// # What a fleet is
//
// A fleet is the CUE package in one directory of the repository (the root,
// or a sub-directory the server is told). Its files may all use one package
// clause of any name, or none at all; when a directory holds both, the named
// package is loaded and files without a package clause are ignored, as the
// cue command does. More than one package name is an error. Files in
// parent directories are never read, not even those of the same package, and
// neither is a cue.mod above the directory: the directory is the whole fleet.
// A cue.mod directory inside it makes it a module whose sub-directories can
// be imported.
//
// # Checking a fleet with the cue command
//
// The printed schema has no package clause, so it combines with fleet files
// of any package when the files are named on the command line:
//
//	molt schema > /tmp/molt_schema.cue
//	cue vet -c /tmp/molt_schema.cue fleet/*.cue
//
// A directory argument (cue vet -c ./fleet) skips files without a package
// clause; to check that way, add the fleet's package clause to the top of the
// copy. The cue command checks the shape of the fleet and every rule
// written in CUE; a few rules that need Go (cron syntax, durations compared
// with each other, ports that must be declared, listen addresses shared by
// two services) are only checked by Load (molt validate). Keeping a copy of
// the schema inside a fleet directory whose files have no package clause
// makes the copy part of the fleet: molt then applies both, which is harmless
// while the copy is current.
//
// # Hermetic loading
//
// Load reads the .cue files under the directory into memory itself and hands
// only that copy to CUE: no network (module registry access is disabled, so
// only the standard library and the module's own packages can be imported),
// no commands (tool files are never loaded), nothing outside the directory,
// and symbolic links are never followed: a link that CUE could load (a .cue
// name, a link to a .cue file, cue.mod, or the directory itself) is an
// issue. Other files are not read at all. Every file (4 MiB), the whole
// snapshot (16 MiB), the number of files (10,000) and the nesting of a
// module's directories (32) are capped; Loader changes the caps. A file
// that is not UTF-8, and @extern (embed) in any file, are issues. os.DirFS
// is a suitable fs.FS: it reports links as links.
//
// # Bounded evaluation
//
// CUE evaluation takes no context and no budget: a three-line
// comprehension runs for minutes and takes gigabytes. A Loader with a
// *Child as its Evaluator reads and caps the snapshot in the calling
// process, then evaluates it in a child process that limits itself
// (RLIMIT_DATA, RLIMIT_CPU, a Go memory limit) and that the parent kills
// when it passes its wall-clock or memory limit, or when the context is
// cancelled. The result crosses back as JSON: the Fleet, or the issues with
// their positions. A Loader without an Evaluator evaluates in the calling
// process, unbounded (for tests and trusted input).
//
// # Errors
//
// An *InvalidError lists every Issue found, as "file:line:col: path:
// message" with file relative to the root of the fs.FS, sorted by position:
// the desired state is wrong and only a new snapshot can fix it. Any other
// error is an I/O error.
//
// # What it does not do
//
// It does not fetch repositories, resolve image tags, check that
// executables exist, or plan anything: it only says whether a snapshot is a
// valid fleet and what that fleet is. Evaluation in the calling process
// cannot be cancelled (CUE takes no context): only a Child bounds it.
package schema
