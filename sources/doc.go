// Package sources holds where molt's desired state comes from and where
// its status goes back: sub-package git reads a fleet from a Git
// repository (fetch, resolve a ref, read a commit's tree), and github
// receives webhooks and writes pull-request comments and commit statuses.
//
// This package itself has no code. The sub-packages do not know about
// CUE, plans or targets: they hand out commits and read-only file systems
// and take status to publish; the reconciler decides what they mean.
package sources
