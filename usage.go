package main

// usageTemplate is kingpin's default usage template with the flags
// ordered for the reader: a command's own flags first, then the flags
// every command shares (logging, collectors, rule files). Without a
// command, --help shows the flags of serve, the default command, first:
// the listen address is where a node_exporter user looks for it.
const usageTemplate = `{{define "FormatCommand" -}}
{{if .FlagSummary}} {{.FlagSummary}}{{end -}}
{{range .Args}}{{if not .Hidden}} {{if not .Required}}[{{end}}{{if .PlaceHolder}}{{.PlaceHolder}}{{else}}<{{.Name}}>{{end}}{{if .Value|IsCumulative}}...{{end}}{{if not .Required}}]{{end}}{{end}}{{end -}}
{{end -}}

{{define "FormatCommands" -}}
{{range .FlattenedCommands -}}
{{if not .Hidden -}}
  {{.FullCommand}}{{if .Default}}*{{end}}{{template "FormatCommand" .}}
{{.Help|Wrap 4}}
{{end -}}
{{end -}}
{{end -}}

{{define "FormatUsage" -}}
{{template "FormatCommand" .}}{{if .Commands}} <command> [<args> ...]{{end}}
{{if .Help}}
{{.Help|Wrap 0 -}}
{{end -}}

{{end -}}

{{if .Context.SelectedCommand -}}
usage: {{.App.Name}} {{.Context.SelectedCommand}}{{template "FormatUsage" .Context.SelectedCommand}}
{{with .Context.SelectedCommand.Flags|FlagsToTwoColumns -}}
Flags of {{$.Context.SelectedCommand.FullCommand}}:
{{FormatTwoColumns .}}
{{end -}}
{{if .Context.Args -}}
Args:
{{.Context.Args|ArgsToTwoColumns|FormatTwoColumns}}
{{end -}}
{{else -}}
usage: {{.App.Name}}{{template "FormatUsage" .App}}
{{range .App.Commands}}{{if .Default}}{{with .Flags|FlagsToTwoColumns -}}
Flags of serve, the default command:
{{FormatTwoColumns .}}
{{end}}{{end}}{{end -}}
{{end -}}
Flags of every command:
{{.App.Flags|FlagsToTwoColumns|FormatTwoColumns}}
{{if .Context.SelectedCommand -}}
{{if len .Context.SelectedCommand.Commands -}}
Subcommands:
{{template "FormatCommands" .Context.SelectedCommand}}
{{end -}}
{{else if .App.Commands -}}
Commands:
{{template "FormatCommands" .App}}
{{end -}}
`
