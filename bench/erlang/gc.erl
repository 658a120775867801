%% Twin of bench/gc.basm: keep a LIVE-element list alive while building {I, [I, I, I]} each
%% iteration, which is garbage by the next one. Reports the collections done during the loop.
%% erlc gc.erl && erl +S 1 -noshell -run gc main 100000 10000000
-module(gc).
-export([main/1]).

main([LiveArg, ItersArg]) ->
    Live = list_to_integer(LiveArg), Iters = list_to_integer(ItersArg),
    Keep = lists:seq(0, Live - 1),
    {Gcs0, _, _} = erlang:statistics(garbage_collection),
    T0 = erlang:monotonic_time(microsecond),
    _Last = churn(Iters, none),
    Us = erlang:monotonic_time(microsecond) - T0,
    {Gcs1, _, _} = erlang:statistics(garbage_collection),
    Live = length(Keep),                      % the live data is still there
    io:format("gc live=~w live_bytes=~w iters=~w us=~w ms=~w ns_per_iter=~w gcs=~w~n",
              [Live, Live * 16, Iters, Us, Us div 1000, round(Us * 1000 / max(Iters, 1)),
               Gcs1 - Gcs0]),
    halt().

%% The previous iteration's term is passed along so the compiler cannot drop the allocation.
churn(0, Prev) -> Prev;
churn(I, _Prev) -> churn(I - 1, {I, [I, I, I]}).
