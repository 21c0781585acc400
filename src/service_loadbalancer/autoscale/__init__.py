"""`service-loadbalancer autoscale`: scales Services' workloads (and the load-balancer
tier) from the load balancer's own stats, by the HorizontalPodAutoscaler's rule."""
