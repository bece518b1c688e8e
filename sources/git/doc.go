// Package git reads molt's desired state from a Git repository with
// go-git, hermetically: a bare cache per remote under the state
// directory, fetched incrementally, and a commit's files read straight
// from the object store as an fs.FS. There is never a checkout or a work
// tree, so nothing a commit contains can change what another commit reads.
//
// The flow is Open (the cache; no network), Fetch (the remote's branches
// and tags; an unchanged remote costs one ref advertisement and no
// download), Resolve (a branch, tag or hash to a Commit, from the cache)
// and Snapshot (the commit's tree, or a sub-directory of it). A one-shot
// reader may ask for a shallow cache (Options.Shallow: the tips without
// their history) and Deepen it if it needs an older commit.
//
// Remotes are local paths and file://, http(s):// and ssh:// URLs. A local
// path becomes a file:// URL, which go-git serves by running the
// git-upload-pack program of the installed Git, or, where Git is not
// installed (molt's image), with its own upload-pack in process; every
// other transport is go-git's own.
//
// The package does not clone work trees, push, follow submodules or LFS
// pointers, follow symbolic links, verify signatures, or fetch to a depth
// other than the tips or the whole history; it knows nothing of CUE or of
// what the files mean. SHA-256 repositories are not supported (go-git v5
// reads SHA-1 only).
package git
