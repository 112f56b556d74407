package notify

import "fmt"

// Title is the event's one-line summary: "shop in team: release shop-v2 promoted".
func (e Event) Title() string {
	what := map[string]string{Promoted: "promoted", RolledBack: "rolled back", Unhealthy: "canary found unhealthy",
		AwaitingApproval: "waits for approval (canaryline approve " + e.App + " -n " + e.Namespace + ")"}[e.Kind]
	if e.Kind == Unhealthy && e.Weight != "" {
		what += " at " + e.Weight + "%"
	}
	return fmt.Sprintf("%s in %s: release %s %s", e.App, e.Namespace, e.Release, what)
}

// facts are the event's details, in order, as label and value.
func (e Event) facts() [][2]string {
	var out [][2]string
	add := func(k, v string) {
		if v != "" {
			out = append(out, [2]string{k, v})
		}
	}
	add("Reason", e.Reason)
	switch e.Kind {
	case Promoted:
		add("Now stable", e.StableImage)
	case RolledBack:
		add("Released (withdrawn)", e.Image)
		add("Stays stable", e.StableImage)
	default:
		add("Canary", e.Image)
	}
	add("PipelineRun", e.PipelineRun)
	return out
}

// Text is the event as plain text: the title, then one line a fact, then the link.
func (e Event) Text() string {
	s := e.Title()
	for _, f := range e.facts() {
		s += "\n" + f[0] + ": " + f[1]
	}
	if e.Link != "" {
		s += "\n" + e.Link
	}
	return s
}

// slack is a Slack incoming webhook's message: the text for notifications, Block Kit blocks for the channel.
func slack(e Event) map[string]any {
	fields := []map[string]any{}
	for _, f := range e.facts() {
		fields = append(fields, map[string]any{"type": "mrkdwn", "text": "*" + f[0] + "*\n" + f[1]})
	}
	blocks := []map[string]any{
		{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": "*" + e.Title() + "*"}},
		{"type": "section", "fields": fields},
	}
	if e.Link != "" {
		blocks = append(blocks, map[string]any{"type": "actions", "elements": []map[string]any{{"type": "button",
			"text": map[string]any{"type": "plain_text", "text": "Open the PipelineRun"}, "url": e.Link}}})
	}
	return map[string]any{"text": e.Title(), "blocks": blocks}
}

// teams is a Microsoft Teams workflow webhook's message: one Adaptive Card with the facts and a link.
func teams(e Event) map[string]any {
	var facts []map[string]any
	for _, f := range e.facts() {
		facts = append(facts, map[string]any{"title": f[0], "value": f[1]})
	}
	card := map[string]any{
		"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard", "version": "1.4",
		"body": []map[string]any{
			{"type": "TextBlock", "text": e.Title(), "weight": "Bolder", "size": "Medium", "wrap": true},
			{"type": "FactSet", "facts": facts},
		},
	}
	if e.Link != "" {
		card["actions"] = []map[string]any{{"type": "Action.OpenUrl", "title": "Open the PipelineRun", "url": e.Link}}
	}
	return map[string]any{"type": "message", "attachments": []map[string]any{
		{"contentType": "application/vnd.microsoft.card.adaptive", "content": card},
	}}
}
