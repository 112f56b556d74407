package catalog

import (
	"fmt"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// pinImages walks a resource and rewrites the image of every step, sidecar and step template (in a Task, or in a
// Pipeline's embedded taskSpecs) with pinImage. fail reports an image that cannot be published.
func pinImages(n *yaml.Node, where, digest string, fail func(where, format string, args ...any)) {
	if n == nil {
		return
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, val := n.Content[i].Value, n.Content[i+1]
			here := join(where, key)
			switch {
			case (key == "steps" || key == "sidecars") && val.Kind == yaml.SequenceNode:
				for j, item := range val.Content {
					name := scalar(mapGet(item, "name"))
					if name == "" {
						name = fmt.Sprint(j)
					}
					pinImage(mapGet(item, "image"), fmt.Sprintf("%s[%s]", here, name), digest, fail)
				}
			case key == "stepTemplate":
				pinImage(mapGet(val, "image"), here, digest, fail)
			default:
				pinImages(val, here, digest, fail)
			}
		}
	case yaml.SequenceNode:
		for j, item := range n.Content {
			here := fmt.Sprintf("%s[%d]", where, j)
			if name := scalar(mapGet(item, "name")); name != "" {
				here = fmt.Sprintf("%s[%s]", where, name)
			}
			pinImages(item, here, digest, fail)
		}
	}
}

func join(where, key string) string {
	if where == "" {
		return key
	}
	return where + "." + key
}

// pinImage rewrites one image node (nil: no image, which Tekton's validation judges).
func pinImage(n *yaml.Node, where, digest string, fail func(where, format string, args ...any)) {
	if n == nil {
		return
	}
	out, err := pinnedImage(n.Value, digest)
	if err != nil {
		fail(where, "%v", err)
		return
	}
	n.Value = out
	n.Style = 0
	n.Tag = "!!str"
}

// pinnedImage checks an image as catlin does and returns it pinned: the step image (StepImage:TAG) gets the digest;
// any other image must be pinned by digest in the source already.
func pinnedImage(image, digest string) (string, error) {
	if strings.Contains(image, "$(") {
		return "", fmt.Errorf("image %q is a parameter: a catalog Task runs a fixed image pinned by digest", image)
	}
	name, dig, hasDigest := strings.Cut(image, "@")
	if hasDigest && !digestRE.MatchString(dig) {
		return "", fmt.Errorf("image %q: %q is not a sha256 digest", image, dig)
	}
	repo, tag := splitTag(name)
	if !qualified(repo) {
		return "", fmt.Errorf("image %q is not fully qualified: name its registry (e.g. ghcr.io/org/image:v1)", image)
	}
	if tag == "latest" {
		return "", fmt.Errorf("image %q uses :latest: name a version tag", image)
	}
	if tag != "" && !tagRE.MatchString(tag) {
		return "", fmt.Errorf("image %q: %q is not a valid tag", image, tag)
	}
	if repo == StepImage {
		if tag == "" {
			return "", fmt.Errorf("image %q has no version tag: use %s:vX.Y.Z", image, StepImage)
		}
		if hasDigest && dig != digest {
			return "", fmt.Errorf("image %q is pinned to %s in the source but the step image's digest is %s: drop the source's digest or make them agree", image, dig, digest)
		}
		return repo + ":" + tag + "@" + digest, nil
	}
	if tag == "" && !hasDigest {
		return "", fmt.Errorf("image %q has no tag or digest (that means :latest): pin it by digest (image:tag@sha256:...)", image)
	}
	if !hasDigest {
		return "", fmt.Errorf("image %q is not pinned by digest: pin it in the source (image:tag@sha256:...)", image)
	}
	return image, nil
}

// splitTag splits REPO[:TAG] (the tag is after the last colon that follows the last slash).
func splitTag(name string) (repo, tag string) {
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		return name[:i], name[i+1:]
	}
	return name, ""
}

// qualified reports whether a repository names its registry: a first path component with a dot.
func qualified(repo string) bool {
	host, rest, ok := strings.Cut(repo, "/")
	return ok && rest != "" && strings.Contains(host, ".")
}
