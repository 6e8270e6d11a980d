"""Evaluation of trained runs: ``robustness`` (every attack over its eps grid, all seeds as one
program), ``report`` (the tables and plots it writes), ``audit`` (whether a robustness number
survives the gradient-masking checks), ``figures``, ``gfa_table`` (Tables 1 and 5) and
``paper_results`` (the papers' numbers, printed beside ours)."""
