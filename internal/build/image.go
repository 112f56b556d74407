package build

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/canaryline/canaryline/internal/step"
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
	desc, err := remote.Head(ref, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain))
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
