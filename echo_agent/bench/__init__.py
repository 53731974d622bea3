"""The retrieval-count benchmark: workspace generator, task suites, the two arms, report and plot."""
