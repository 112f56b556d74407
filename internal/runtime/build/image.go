package build

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/canaryline/canaryline/internal/runtime/step"
)

func parseImage(s string, insecure bool) (name.Reference, error) {
	opts := []name.Option{name.StrictValidation}
	if insecure {
		opts = append(opts, name.Insecure)
	}
	ref, err := name.ParseReference(s, opts...)
	if err != nil {
		return nil, step.Invalid("IMAGE", "give a full reference such as quay.io/team/app:v1.2 or quay.io/team/app@sha256:...",
			"%q is not a valid image reference: %v", s, err)
	}
	return ref, nil
}

// Resolve pins an image built elsewhere to its digest, asking its registry (with the credentials of the docker
// config in $DOCKER_CONFIG, as a docker-config workspace provides them). A reference that is already pinned is
// checked to exist.
func Resolve(ctx context.Context, cfg *WaitConfig, log *slog.Logger) (Image, error) {
	ref, err := parseImage(cfg.Image, cfg.InsecureRegistry)
	if err != nil {
		return Image{}, err
	}
	// The registry's credentials are never printed: register them for redaction before anything can echo them.
	auth, err := authn.DefaultKeychain.Resolve(ref.Context())
	if err != nil {
		return Image{}, step.Invalid("IMAGE", "bind a docker-config workspace whose config.json is valid JSON (a secret with .dockerconfigjson)",
			"reading the registry credentials for %s: %v", ref.Context().RegistryStr(), err)
	}
	if ac, err := auth.Authorization(); err == nil && ac != nil {
		for _, s := range []string{ac.Password, ac.Auth, ac.IdentityToken, ac.RegistryToken} {
			step.AddSecret(s)
		}
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithAuth(auth)}
	if cfg.InsecureRegistry {
		log.Warn(fmt.Sprintf("INSECURE_REGISTRY=true: TLS verification is off for registry %s (plain HTTP and untrusted certificates are accepted)",
			ref.Context().RegistryStr()))
		tr := remote.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
		opts = append(opts, remote.WithTransport(tr))
	}
	desc, err := remote.Head(ref, opts...)
	if err != nil {
		var terr *transport.Error
		if errors.As(err, &terr) {
			switch terr.StatusCode {
			case http.StatusUnauthorized, http.StatusForbidden:
				return Image{}, step.Invalid("IMAGE", "bind a docker-config workspace (a secret with .dockerconfigjson) whose credentials can pull it",
					"registry %s refused access to %s (%d)", ref.Context().RegistryStr(), ref, terr.StatusCode)
			case http.StatusNotFound:
				return Image{}, step.Invalid("IMAGE", "check the repository and tag; the image must be pushed before the release", "%s does not exist in its registry", ref)
			}
		}
		return Image{}, fmt.Errorf("resolve %s to a digest: %w", ref, err)
	}
	img := Image{URL: ref.Context().Name() + "@" + desc.Digest.String(), Digest: desc.Digest.String()}
	if d, ok := ref.(name.Digest); ok && d.DigestStr() != img.Digest {
		return Image{}, fmt.Errorf("registry answered digest %s for %s", img.Digest, ref)
	}
	log.Info(fmt.Sprintf("image built elsewhere: %s is %s", ref, img.URL), "mediaType", desc.MediaType)
	return img, nil
}
