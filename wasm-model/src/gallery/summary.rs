//! `gallery.json`'s optional `summary` (README "Gallery"): what a gallery holds, counted by theme from its
//! captions, and a few example prompts that work on it — what the page's empty state shows before any search,
//! without reading every item. The themes are counted here; the examples need the model (`engine::summary`).

use serde::{Deserialize, Serialize};

use super::GalleryItem;
use crate::tokenizer::tokenize;

/// `gallery.json` `summary`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GallerySummary {
    /// Pictures whose caption names something of each theme (a picture may count in several; a caption that
    /// names none counts in none), most first; themes without a picture are left out.
    pub themes: Vec<ThemeCount>,
    /// Prompts whose results are good on this gallery, best first (see `Engine::gallery_summary`).
    pub examples: Vec<ExamplePrompt>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThemeCount {
    pub theme: String,
    pub count: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExamplePrompt {
    pub prompt: String,
    /// The top result's score.
    pub score: f32,
    /// Strong matches among the prompt's first [`EXAMPLE_DEPTH`] results; `None` when the model is not calibrated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strong: Option<usize>,
}

/// How many results of an example prompt are looked at.
pub const EXAMPLE_DEPTH: usize = 10;

/// The themes and the caption words that put a picture in them: a hand-made list of common nouns (singular;
/// regular plurals match too), so the counts can be read and checked. On the 776-image default gallery it
/// places 98 % of the captions (all but 17); the rest are rarer words (a quokka, a sextant) and count in no theme.
pub const THEMES: &[(&str, &str)] = &[
    ("nature and landscapes", "landscape mountain peak hill valley forest wood woods tree field meadow grass flower blossom \
        garden lake river stream brook waterfall sea ocean beach shore coast bay island wave sky cloud sunset sunrise dusk \
        dawn twilight desert dune canyon rock cliff cave snow snowy ice glacier volcano park leaf leaves countryside moon \
        planet star galaxy nebula jupiter saturn mars earth sun rainbow fog mist storm lightning pond swamp marsh jungle \
        rainforest reef pebble sand dandelion tulip rose daisy sunflower cactus fern moss daffodil iris marigold gazania \
        lavender plant oak pine pinecone thyme lagoon dam water fire flame"),
    ("animals", "animal pet dog puppy cat kitten bird horse pony foal cow calf bull ox bison buffalo yak sheep lamb ram goat \
        pig piglet boar chicken hen rooster chick duck duckling goose geese gosling gander drake swan owl eagle hawk falcon \
        vulture parrot macaw rosella budgie penguin pigeon dove crow raven robin sparrow blackbird cuckoo lark magpie \
        quetzal turkey heron stork crane flamingo ostrich emu peacock peahen spoonbill pelican gull seagull kingfisher \
        woodpecker hummingbird toucan fish shark whale orca dolphin narwhal seal walrus turtle tortoise frog toad snake \
        lizard iguana chameleon gecko crocodile alligator dinosaur lion lioness tiger leopard cheetah jaguar lynx bear \
        elephant giraffe zebra zebu monkey gibbon tamarin ape gorilla chimpanzee orangutan lemur deer doe stag fawn moose \
        elk wapiti reindeer caribou antelope gazelle blackbuck wildebeest fox wolf dingo coyote jackal hyena rabbit bunny \
        hare squirrel chipmunk marmot mouse mice rat hamster ferret capybara wombat butterfly moth caterpillar bee wasp \
        hornet hoverfly fly dragonfly ladybird ladybug beetle insect bug grasshopper cricket mantis woodlouse ant spider \
        scorpion crab lobster shrimp prawn octopus squid jellyfish starfish snail slug worm camel dromedary llama alpaca \
        kangaroo koala panda hippo hippopotamus rhino rhinoceros donkey mule bat hedgehog otter beaver badger raccoon skunk \
        mole tadpole coral cichlid goldfish carp trout salmon tuna mullet perch cod herring clownfish seahorse stingray \
        lionfish butterflyfish dolphinfish grenadier mussel abalone"),
    ("places and buildings", "city town village street road alley building house home cottage hut shack cabin mansion \
        warehouse church cathedral chapel mosque temple mausoleum castle château chateau fort fortress palace pavilion tower \
        bridge skyline square market shop store restaurant cafe bar station airport harbour harbor port pier jetty dock \
        lighthouse windmill barn farm monument memorial statue arch wall gate gateway fountain stadium museum library \
        school hospital room kitchen bedroom bathroom office hall lobby corridor cinema theatre theater stair stairs \
        staircase railway ruin ruins pyramid skyscraper roof cemetery grave gravestone headstone tombstone parthenon \
        acropolis"),
    ("objects and tools", "tool hammer mallet saw screwdriver wrench spanner pliers cutters drill chisel axe sickle shovel \
        spade rake tweezers scissors knife fork spoon ruler tape pencil pen eraser brush paintbrush paint chalkboard guitar \
        lute piano violin cello trumpet flute drum cymbal instrument clock watch ball toy doll teddy book lamp chair table \
        sofa bed desk phone telephone computer laptop keyboard camera bottle cup mug glass jar pitcher bowl plate pot pan \
        kettle teapot teacup key umbrella hat wig shoe boot bag basket box toolbox bin can candle lantern bucket ladder \
        rope bell thermometer multimeter scale microscope telescope binoculars stethoscope syringe bandage compass globe \
        map coin money battery bulb lightbulb cylinder flag cone mailbox hydrant toilet trampoline"),
    ("people", "person people man men woman women boy girl child children kid baby babies toddler family couple crowd \
        player dancer breakdancer teenager adult friend student worker farmer soldier paratrooper astronaut chef doctor \
        nurse policeman firefighter referee umpire musician orchestra singer guitarist drummer athlete runner swimmer \
        skier surfer cyclist rider climber clown bride groom lady gentleman grandmother grandfather mother father son \
        daughter face portrait"),
    ("food and drink", "food fruit apple banana orange lemon lime pear grape strawberry cherry peach plum apricot pineapple \
        watermelon melon kiwi kiwifruit mango coconut berry blueberry raspberry vegetable tomato potato carrot pepper onion \
        garlic ginger cabbage lettuce broccoli cauliflower cucumber corn pumpkin squash eggplant aubergine pea bean \
        mushroom cep bread loaf baguette croissant cake cupcake pie tart pizza sandwich burger hamburger hotdog cheese egg \
        meat roast sausage ham bacon steak salad soup rice pasta noodles spaghetti cookie biscuit chocolate candy sweets \
        dessert pudding coffee tea milk juice wine beer drink breakfast lunch dinner meal nut walnut hazelnut almond \
        peanut popcorn honey jam sugar salt flour cereal puffs snack"),
    ("vehicles", "vehicle car sedan truck lorry pickup bus tram train locomotive bicycle tricycle bike motorcycle motorbike \
        scooter boat ship yacht sailboat canoe kayak ferry submarine airplane aeroplane plane jet helicopter rocket \
        spacecraft shuttle probe balloon tractor van taxi ambulance tank wagon cart carriage wheel mixer"),
];

/// The themes (`THEMES` names, in that order) whose words `text` contains.
pub fn themes_of(text: &str) -> Vec<&'static str> {
    let tokens = tokenize(text);
    THEMES
        .iter()
        .filter(|(_, words)| tokens.iter().any(|t| words.split_whitespace().any(|w| names_word(t, w))))
        .map(|(name, _)| *name)
        .collect()
}

/// Whether caption token `token` is `word` or one of its regular plurals (`dogs`, `boxes`, `berries`).
pub fn names_word(token: &str, word: &str) -> bool {
    if let (Some(stem), Some(root)) = (token.strip_suffix("ies"), word.strip_suffix('y')) {
        if stem == root {
            return true;
        }
    }
    token == word || token.strip_suffix('s') == Some(word) || token.strip_suffix("es") == Some(word)
}

/// Pictures per theme in `items`' captions, most first (ties in `THEMES` order), themes with none left out.
pub fn count_themes(items: &[GalleryItem]) -> Vec<ThemeCount> {
    let mut counts = vec![0usize; THEMES.len()];
    for item in items {
        for theme in themes_of(&item.caption) {
            counts[THEMES.iter().position(|(n, _)| *n == theme).expect("a theme of THEMES")] += 1;
        }
    }
    let mut out: Vec<ThemeCount> = THEMES
        .iter()
        .zip(counts)
        .filter(|(_, c)| *c > 0)
        .map(|((theme, _), count)| ThemeCount { theme: (*theme).to_string(), count })
        .collect();
    out.sort_by_key(|c| std::cmp::Reverse(c.count)); // stable: ties keep THEMES order
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(caption: &str) -> GalleryItem {
        GalleryItem { id: 0, file: "f.jpg".into(), thumb: "t.jpg".into(), caption: caption.into(), source: String::new(), licence: String::new(), url: None, hubness: None, ..Default::default() }
    }

    #[test]
    fn captions_fall_in_the_themes_their_words_name() {
        assert_eq!(themes_of("a man riding a horse on the beach"), ["nature and landscapes", "animals", "people"]);
        assert_eq!(themes_of("Two DOGS playing"), ["animals"], "plural, upper case");
        assert_eq!(themes_of("a bowl of berries"), ["objects and tools", "food and drink"], "-ies plural");
        assert_eq!(themes_of("three boxes"), ["objects and tools"], "-es plural");
        assert!(themes_of("a platypus").is_empty(), "not in the list: in no theme");
        assert!(themes_of("").is_empty());
        assert!(themes_of("catalogue").is_empty(), "whole words only, not prefixes");
        assert!(THEMES.iter().all(|(_, words)| words.split_whitespace().all(|w| w == w.to_lowercase())), "lower case words");
    }

    #[test]
    fn theme_counts_are_most_first_and_skip_empty_themes() {
        let items: Vec<GalleryItem> = ["a dog", "a cat on a sofa", "a red car", "a platypus", "an old church"].iter().map(|c| item(c)).collect();
        let counts = count_themes(&items);
        let got: Vec<(&str, usize)> = counts.iter().map(|c| (c.theme.as_str(), c.count)).collect();
        assert_eq!(got, [("animals", 2), ("places and buildings", 1), ("objects and tools", 1), ("vehicles", 1)]);
    }
}
