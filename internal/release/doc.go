// Package release checks that the repository's nested modules can be
// installed by name once the repository is tagged: each requires the
// release version in VERSION of every module of this repository it uses,
// and that requirement resolves without the local replace directives,
// which a user's go get ignores. The package has tests only.
package release
