%% Twin of bench/count.basm: a counting loop of N iterations (acc += i, i -= 1 while i > 0).
%% erlc count.erl && erl +S 1 -noshell -run count main 100000000
-module(count).
-export([main/1]).

main([Arg]) ->
    N = list_to_integer(Arg),
    Start = erlang:monotonic_time(microsecond),
    Sum = count_down(N, 0),
    Us = erlang:monotonic_time(microsecond) - Start,
    io:format("count n=~w sum=~w us=~w ms=~w ns_per_iter=~.2f~n",
              [N, Sum, Us, Us div 1000, Us * 1000 / max(N, 1)]),
    halt().

count_down(I, Acc) when I > 0 -> count_down(I - 1, Acc + I);
count_down(_, Acc) -> Acc.
