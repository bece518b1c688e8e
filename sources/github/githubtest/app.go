package githubtest

import (
	"cmp"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// App is a GitHub App installed on the server's repository. The server
// answers its endpoints only for a JWT that the app's key signed (RS256)
// with the app's id as iss, an iat not in the future and an exp in the
// next ten minutes, as GitHub does:
//
//   - GET /repos/{owner}/{repo}/installation answers the installation;
//   - POST /app/installations/{id}/access_tokens issues an installation
//     token that lasts TokenTTL by the server's clock (Options.Now); an
//     expired or revoked one is answered 401 "Bad credentials".
//
// What an installation token creates is authored by "<Slug>[bot]", and
// a request that its Permissions do not allow is answered 403 "Resource
// not accessible by integration".
type App struct {
	// ID is the app's id, the iss of its JWTs. Required.
	ID int64
	// PublicKey checks the JWTs' signatures. Required.
	PublicKey *rsa.PublicKey
	// InstallationID is the installation's id. Default 1.
	InstallationID int64
	// Slug is the app's name in URLs and logins. Default "molt".
	Slug string
	// TokenTTL is how long an installation token lasts. Default an
	// hour, as GitHub's.
	TokenTTL time.Duration
	// Permissions are the installation's, as GitHub names them
	// ("statuses": "write", "issues": "read", ...). Nil means write on
	// contents, issues, pull_requests and statuses.
	Permissions map[string]string
}

// IssuedToken is an installation token the server issued.
type IssuedToken struct {
	Token   string
	Expires time.Time
}

// InstallationTokens returns the installation tokens issued and not
// revoked, expired ones too, oldest first.
func (s *Server) InstallationTokens() []IssuedToken {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []IssuedToken
	for tok, exp := range s.installTokens {
		out = append(out, IssuedToken{Token: tok, Expires: exp})
	}
	slices.SortFunc(out, func(a, b IssuedToken) int { return cmp.Compare(a.Token, b.Token) })
	return out
}

// RevokeInstallationTokens revokes every installation token issued so
// far, as GitHub does when an installation's permissions change or it is
// suspended: using one is answered 401.
func (s *Server) RevokeInstallationTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.installTokens)
}

// appEndpoint reports whether a request is one that GitHub authenticates
// with the app's JWT.
func appEndpoint(method, path string) bool {
	if strings.HasPrefix(path, "/app/") || path == "/app" {
		return true
	}
	segs := strings.Split(strings.Trim(path, "/"), "/")
	return method == http.MethodGet && len(segs) == 4 && segs[0] == "repos" && segs[3] == "installation"
}

// The messages GitHub answers a JWT with, as it words them.
const (
	jwtUndecodable = "A JSON web token could not be decoded"
	jwtExpired     = "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires"
	jwtTooLong     = "'Expiration time' claim ('exp') is too far in the future"
	jwtIssuedLater = "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued"
	jwtMissingIss  = "'Issuer' claim ('iss') must be an Integer"
)

// authorizeJWT checks the app's JWT: its RS256 signature by the app's
// key, its issuer and its times, by the server's clock.
func (s *Server) authorizeJWT(header string) (identity, *errorJSON) {
	refuse := func(msg string) (identity, *errorJSON) {
		return identity{}, &errorJSON{Message: msg, DocumentationURL: docs}
	}
	if header == "" {
		return refuse("Requires authentication")
	}
	tok, ok := bearer(header)
	parts := strings.Split(tok, ".")
	if !ok || len(parts) != 3 {
		return refuse(jwtUndecodable)
	}
	var head struct {
		Alg string `json:"alg"`
	}
	if !decodePart(parts[0], &head) || head.Alg != "RS256" {
		return refuse(jwtUndecodable)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return refuse(jwtUndecodable)
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(s.app.PublicKey, crypto.SHA256, digest[:], sig) != nil {
		return refuse(jwtUndecodable)
	}
	var claims struct {
		IAT *json.Number    `json:"iat"`
		EXP *json.Number    `json:"exp"`
		ISS json.RawMessage `json:"iss"`
	}
	if !decodePart(parts[1], &claims) {
		return refuse(jwtUndecodable)
	}
	iss := strings.Trim(string(claims.ISS), `"`)
	if iss == "" {
		return refuse(jwtMissingIss)
	}
	if iss != strconv.FormatInt(s.app.ID, 10) {
		return refuse(jwtUndecodable)
	}
	now := s.now().Unix()
	iat, errI := jsonInt(claims.IAT)
	exp, errE := jsonInt(claims.EXP)
	switch {
	case errI != nil || iat > now:
		return refuse(jwtIssuedLater)
	case errE != nil || exp <= now:
		return refuse(jwtExpired)
	case exp > now+600:
		return refuse(jwtTooLong)
	}
	return identity{credential: CredentialJWT, login: s.app.Slug + "[bot]"}, nil
}

func decodePart(part string, v any) bool {
	b, err := base64.RawURLEncoding.DecodeString(part)
	return err == nil && json.Unmarshal(b, v) == nil
}

func jsonInt(n *json.Number) (int64, error) {
	if n == nil {
		return 0, fmt.Errorf("missing")
	}
	return n.Int64()
}

// permissionFor reports whether the installation's permissions allow a
// request on the repository, and the documentation of the refusal.
func (s *Server) permissionFor(method, path string) (string, bool) {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	if len(segs) < 4 || segs[0] != "repos" {
		return "", true
	}
	level := "read"
	if method != http.MethodGet && method != http.MethodHead {
		level = "write"
	}
	var either []string
	var doc string
	switch area := segs[3]; {
	case area == "statuses", area == "commits" && segs[len(segs)-1] == "statuses":
		either, doc = []string{"statuses"}, "/commits/statuses"
	case area == "issues":
		either, doc = []string{"issues", "pull_requests"}, "/issues/comments"
	case area == "pulls", area == "commits" && segs[len(segs)-1] == "pulls":
		either, doc = []string{"pull_requests"}, "/pulls/pulls"
	case area == "git":
		either, doc = []string{"contents"}, "/git"
	default:
		return "", true
	}
	perms := s.app.Permissions
	if perms == nil {
		perms = defaultPermissions()
	}
	for _, p := range either {
		if have := perms[p]; have == "write" || (have == "read" && level == "read") {
			return "", true
		}
	}
	return doc, false
}

func defaultPermissions() map[string]string {
	return map[string]string{"contents": "write", "issues": "write", "pull_requests": "write", "statuses": "write", "metadata": "read"}
}

// installationJSON is GET /repos/{owner}/{repo}/installation's answer.
type installationJSON struct {
	ID                  int64             `json:"id"`
	Account             userJSON          `json:"account"`
	RepositorySelection string            `json:"repository_selection"`
	AccessTokensURL     string            `json:"access_tokens_url"`
	RepositoriesURL     string            `json:"repositories_url"`
	HTMLURL             string            `json:"html_url"`
	AppID               int64             `json:"app_id"`
	AppSlug             string            `json:"app_slug"`
	TargetID            int64             `json:"target_id"`
	TargetType          string            `json:"target_type"`
	Permissions         map[string]string `json:"permissions"`
	Events              []string          `json:"events"`
	CreatedAt           string            `json:"created_at"`
	UpdatedAt           string            `json:"updated_at"`
	SingleFileName      *string           `json:"single_file_name"`
	SuspendedAt         *string           `json:"suspended_at"`
}

// accessTokenJSON is POST /app/installations/{id}/access_tokens's answer.
type accessTokenJSON struct {
	Token               string            `json:"token"`
	ExpiresAt           string            `json:"expires_at"`
	Permissions         map[string]string `json:"permissions"`
	RepositorySelection string            `json:"repository_selection"`
	Repositories        []repoJSON        `json:"repositories,omitempty"`
}

func (s *Server) permissions() map[string]string {
	if s.app.Permissions == nil {
		return defaultPermissions()
	}
	return maps.Clone(s.app.Permissions)
}

func (s *Server) getInstallation(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.app == nil {
		notFound(w)
		return
	}
	if !s.ours(w, r) {
		return
	}
	owner := s.user(s.owner)
	id := s.app.InstallationID
	writeJSON(w, http.StatusOK, installationJSON{
		ID: id, Account: owner, RepositorySelection: "selected",
		AccessTokensURL: fmt.Sprintf("%sapp/installations/%d/access_tokens", s.api, id),
		RepositoriesURL: s.api + "installation/repositories",
		HTMLURL:         fmt.Sprintf("%sorganizations/%s/settings/installations/%d", s.web, s.owner, id),
		AppID:           s.app.ID, AppSlug: s.app.Slug, TargetID: owner.ID, TargetType: "Organization",
		Permissions: s.permissions(), Events: []string{"pull_request", "push", "issue_comment"},
		CreatedAt: stamp(s.now()), UpdatedAt: stamp(s.now()),
	})
}

func (s *Server) createAccessToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Repositories  []string          `json:"repositories"`
		RepositoryIDs []int64           `json:"repository_ids"`
		Permissions   map[string]string `json:"permissions"`
	}
	if r.ContentLength != 0 && !decode(w, r, &req) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.app == nil || r.PathValue("id") != strconv.FormatInt(s.app.InstallationID, 10) {
		notFound(w)
		return
	}
	const doc = docs + "/apps/apps#create-an-installation-access-token-for-an-app"
	for _, name := range req.Repositories {
		if !strings.EqualFold(name, s.repo) {
			unprocessable(w, doc, "There is at least one repository that does not exist or is not accessible to the parent installation.")
			return
		}
	}
	s.seq++
	tok := fmt.Sprintf("ghs_%036d", s.seq)
	expires := s.now().Add(s.app.TokenTTL).Truncate(time.Second)
	s.installTokens[tok] = expires
	out := accessTokenJSON{Token: tok, ExpiresAt: stamp(expires), Permissions: s.permissions(), RepositorySelection: "selected"}
	if len(req.Repositories) > 0 {
		out.Repositories = []repoJSON{s.repoJSON()}
	}
	writeJSON(w, http.StatusCreated, out)
}
