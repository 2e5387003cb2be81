// Package dashboards holds the Grafana dashboards of tcpadvisor, to import
// as they are: each asks for a Prometheus data source and the instances to
// show, and hard-codes neither. tcpadvisor.json shows one host or more;
// tcpadvisor-netns.json is the same with its network-namespace variable
// shown, for exporters run with --collector.netns (its test derives it from
// tcpadvisor.json, and -update regenerates it); fleet.json shows every host
// at once.
//
// There is no code here: the tests check the dashboard's structure against
// the Grafana schema version it declares, parse every query with the PromQL
// parser, check that each metric it reads is one the exporter exports, and
// run every query over the exporter's golden exposition.
package dashboards
