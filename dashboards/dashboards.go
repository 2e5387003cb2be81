// Package dashboards holds the Grafana dashboard of tcpadvisor,
// tcpadvisor.json, to import as it is: it asks for a Prometheus data source
// and the instances to show, and hard-codes neither.
//
// There is no code here: the tests check the dashboard's structure against
// the Grafana schema version it declares, parse every query with the PromQL
// parser, check that each metric it reads is one the exporter exports, and
// run every query over the exporter's golden exposition.
package dashboards
